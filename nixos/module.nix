# services.qtap.devTools: the qtap DevTools on a NixOS host, socket-activated.
#
# Thin on purpose: the units are the package's own copies of systemd/qtap-devtools.socket
# and .service (systemd.packages), so their hardening and comments have one source. This
# module only overrides what its options change: the listen address (socket) and the
# command line (service), and enables the socket.
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

  # 127.0.0.1:10001, [::1]:10001 (ListenStream= takes addresses, not host names)
  isLoopback = addr: lib.hasPrefix "127." addr || lib.hasPrefix "[::1]:" addr;
  remote = !isLoopback cfg.listenAddress;

  execStart = lib.concatStringsSep " " (
    [
      (lib.getExe cfg.package)
      "--enable-dev-tools"
      "--log-level"
      cfg.logLevel
      "--idle-timeout"
      cfg.idleTimeout
    ]
    ++ lib.optional remote "--allow-remote"
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
      type = types.str;
      default = "127.0.0.1:10001";
      example = "[::1]:10001";
      description = ''
        Address the socket unit listens on (`ListenStream=`), as `IP:PORT` or `[IPv6]:PORT`.
        The event stream carries credentials and personal data: keep it on loopback and
        reach it through `ssh -L 10001:localhost:10001 HOST`. A non-loopback address adds
        `--allow-remote` to the daemon's command line and a warning to the build.
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
      type = types.strMatching "([0-9]+(ms|s|sec|m|min|h)?)+";
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

    systemd.sockets.qtap-devtools = {
      wantedBy = [ "sockets.target" ];
      # "" resets the ListenStream= of the upstream unit before adding ours.
      listenStreams = [
        ""
        cfg.listenAddress
      ];
    };

    # Not wanted by any target: only the socket starts it.
    systemd.services.qtap-devtools = {
      # Restarting a running daemon on a switch would cut the operator's live stream; the
      # next connection runs the new one anyway.
      restartIfChanged = false;
      serviceConfig.ExecStart = [
        ""
        execStart
      ];
    };

    # `qtap trace` and `qtap --help` for the operator.
    environment.systemPackages = [ cfg.package ];

    warnings = lib.optional remote ''
      services.qtap.devTools.listenAddress = "${cfg.listenAddress}" is not a loopback address:
      the DevTools stream (request and response bodies, Authorization headers, cookies) is
      then readable by anyone who can reach that address. Prefer the default and
      `ssh -L 10001:localhost:10001 HOST`.
    '';
  };
}
