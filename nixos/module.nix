# services.qtap.devTools: the qtap DevTools on a NixOS host, socket-activated.
#
# Thin on purpose: the units are the package's own copies of systemd/qtap-devtools.socket
# and .service (systemd.packages), so their hardening and comments have one source. This
# module only overrides what its options change: the listen address (socket), the command
# line (service: log level, idle timeout, --allow-remote, --allow-user, --allow-group), and
# enables the socket.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.qtap.devTools;
  inherit (lib)
    mkOption
    mkEnableOption
    mkIf
    types
    ;

  # What listenAddress accepts (ListenStream= takes addresses and paths, not host names):
  # IPv4:PORT, [IPv6]:PORT, or an absolute path (a unix socket).
  ipv4Re = "[0-9]{1,3}([.][0-9]{1,3}){3}:[0-9]{1,5}";
  ipv6Re = "\\[[0-9A-Fa-f:.]+]:[0-9]{1,5}";
  pathRe = "/[A-Za-z0-9._/@+-]+";
  isUnix = addr: lib.hasPrefix "/" addr;
  portOk =
    addr:
    isUnix addr
    || (
      let
        port = lib.toInt (lib.last (lib.splitString ":" addr));
      in
      port >= 1 && port <= 65535
    );
  listenAddressType = lib.types.addCheck (types.strMatching "${ipv4Re}|${ipv6Re}|${pathRe}") portOk
    // {
      description = "IPv4:PORT, [IPv6]:PORT or an absolute unix socket path";
    };
  isLoopback =
    addr: isUnix addr || lib.hasPrefix "127." addr || lib.hasPrefix "[::1]:" addr;
  remote = !isLoopback cfg.listenAddress;

  # user and group names as useradd accepts them, or numeric ids
  nameOrId = types.either types.ints.unsigned (
    types.strMatching "[A-Za-z_][A-Za-z0-9_.-]*[$]?" // { description = "user or group name"; }
  );

  execStart = lib.concatStringsSep " " (
    [
      (lib.getExe cfg.package)
      "--enable-dev-tools"
      "--log-level"
      cfg.logLevel
      "--idle-timeout"
      cfg.idleTimeout
    ]
    ++ lib.optional cfg.allowRemote "--allow-remote"
    ++ lib.concatMap (u: [
      "--allow-user"
      (toString u)
    ]) cfg.allowUsers
    ++ lib.concatMap (g: [
      "--allow-group"
      (toString g)
    ]) cfg.allowGroups
  );
in
{
  options.services.qtap.devTools = {
    enable = mkEnableOption ''
      the qtap DevTools: the Chrome DevTools Network panel for this host. A socket unit
      listens on {option}`services.qtap.devTools.listenAddress`; the first connection starts
      the daemon, which attaches its eBPF probes only while a client is connected and exits
      after {option}`services.qtap.devTools.idleTimeout` without one. Open
      http://localhost:10001/devtools/ (from another machine through
      `ssh -L 10001:localhost:10001 HOST`)'';

    package = mkOption {
      type = types.package;
      default =
        pkgs.qtap-devtools or (throw ''
          services.qtap.devTools.package: no default here. Import this module through the
          qtap flake (nixosModules.default sets it), or set the option to a qtap package.
        '');
      defaultText = lib.literalExpression "qtap-devtools.packages.\${pkgs.stdenv.hostPlatform.system}.default";
      description = ''
        The qtap package. Its `lib/systemd/system` holds the socket and service units
        (from the repository's `systemd/`), which this module enables and overrides.
      '';
    };

    listenAddress = mkOption {
      type = listenAddressType;
      default = "127.0.0.1:10001";
      example = "/run/qtap/devtools.sock";
      description = ''
        Address the socket unit listens on (`ListenStream=`): `IP:PORT`, `[IPv6]:PORT`, or
        an absolute path for a unix socket (mode 0666: every connection's uid is checked,
        see {option}`services.qtap.devTools.allowUsers`). The event stream carries
        credentials and personal data: keep it on loopback or a unix socket and reach it
        through `ssh -L 10001:localhost:10001 HOST` or
        `ssh -L 10001:/run/qtap/devtools.sock HOST`. A non-loopback address needs
        {option}`services.qtap.devTools.allowRemote`.
      '';
    };

    allowRemote = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Let the daemon serve a non-loopback {option}`services.qtap.devTools.listenAddress`
        (`--allow-remote`), and lift the units' `IPAddressDeny=any`. Peers on other machines
        cannot be identified by uid, so anyone who can reach the address can then read the
        captured traffic. Evaluation fails if the address is not loopback and this is off.
      '';
    };

    allowUsers = mkOption {
      type = types.listOf nameOrId;
      default = [ ];
      example = [
        "alice"
        1001
      ];
      description = ''
        Users (names or uids) who may watch, besides root (`--allow-user`). Every connection
        is identified (the uid owning the client's TCP socket, or `SO_PEERCRED` on a unix
        socket) before anything is served; others get 403 and load no probe. Over
        `ssh -L`, the user is the one who logged in.
      '';
    };

    allowGroups = mkOption {
      type = types.listOf nameOrId;
      default = [ ];
      example = [ "wheel" ];
      description = ''
        Groups (names or gids) whose members may watch (`--allow-group`); primary and
        supplementary memberships count.
      '';
    };

    logLevel = mkOption {
      type = types.enum [
        "error"
        "warn"
        "info"
        "debug"
      ];
      default = "info";
      description = ''
        The daemon's log level (`--log-level`). Logs go to the journal
        (`journalctl -u qtap-devtools`); they describe traffic and never quote it.
      '';
    };

    idleTimeout = mkOption {
      # what the daemon's --idle-timeout parses: a bare number of seconds, or number+unit
      # pairs (no bare number after a unit: "1h30" fails here, not at start)
      type = types.strMatching "[0-9]+|([0-9]+(ms|s|sec|m|min|h))+";
      default = "10m";
      example = "30m";
      description = ''
        How long the socket-activated daemon stays up without any client before it exits
        (`--idle-timeout`); the socket starts it again on the next connection. Units: ms, s,
        m, h (e.g. `90s`, `1h30m`); a bare number is seconds; `0` never exits. Probes are
        detached a few seconds after the last client leaves, whatever this value.
      '';
    };
  };

  config = mkIf cfg.enable {
    # Upstream units, installed from the package into the system's unit path.
    systemd.packages = [ cfg.package ];

    assertions = [
      {
        assertion = remote -> cfg.allowRemote;
        message = ''
          services.qtap.devTools.listenAddress = "${cfg.listenAddress}" is not a loopback
          address: set services.qtap.devTools.allowRemote = true if that is intended (anyone
          who can reach it can then read the captured traffic), or keep the default and use
          `ssh -L 10001:localhost:10001 HOST`.
        '';
      }
    ];

    systemd.sockets.qtap-devtools = {
      wantedBy = [ "sockets.target" ];
      # "" resets the ListenStream= of the upstream unit before adding ours.
      listenStreams = [
        ""
        cfg.listenAddress
      ];
      socketConfig =
        lib.optionalAttrs (isUnix cfg.listenAddress) {
          # anyone may connect; the daemon's uid check is the gate (see the upstream
          # qtap-devtools-unix.socket)
          SocketMode = "0666";
          DirectoryMode = "0755";
          RemoveOnStop = true;
        }
        // lib.optionalAttrs cfg.allowRemote {
          IPAddressAllow = "any";
        };
    };

    # Not wanted by any target: only the socket starts it.
    systemd.services.qtap-devtools = {
      # Restarting a running daemon on a switch would cut the operator's live stream; the
      # next connection runs the new one anyway.
      restartIfChanged = false;
      serviceConfig = {
        ExecStart = [
          ""
          execStart
        ];
      }
      // lib.optionalAttrs cfg.allowRemote { IPAddressAllow = "any"; };
    };

    # `qtap trace` and `qtap --help` for the operator.
    environment.systemPackages = [ cfg.package ];

    warnings = lib.optional (remote && cfg.allowRemote) ''
      services.qtap.devTools.listenAddress = "${cfg.listenAddress}" is not a loopback address:
      the DevTools stream (request and response bodies, Authorization headers, cookies) is
      then readable by anyone who can reach that address. Prefer the default and
      `ssh -L 10001:localhost:10001 HOST`.
    '';
  };
}
