# A cheap check (no VM): evaluate a NixOS system with non-default options and assert the
# unit overrides the module generates. The VM test (vm-tests/nixos-devtools.nix) runs them.
{
  lib,
  nixosSystem,
  runCommand,
  module,
}:
let
  systemWith =
    devTools:
    nixosSystem {
      system = "x86_64-linux";
      modules = [
        module
        {
          boot.isContainer = true;
          system.stateVersion = "25.11";
          services.qtap.devTools = {
            enable = true;
          }
          // devTools;
        }
      ];
    };
  system = systemWith {
    listenAddress = "[::1]:10002";
    logLevel = "debug";
    idleTimeout = "90s";
    allowUsers = [
      "alice"
      1001
    ];
    allowGroups = [ "wheel" ];
  };
  unixSystem = systemWith { listenAddress = "/run/qtap/devtools.sock"; };
  unixSocket = unixSystem.config.systemd.units."qtap-devtools.socket".text;
  # a non-loopback address without allowRemote: a failed assertion (evaluation stops)
  failedAssertions =
    cfg: lib.filter (a: !a.assertion) (systemWith cfg).config.assertions;
  # values the daemon would refuse at start fail at evaluation
  evaluates =
    cfg:
    let
      c = (systemWith cfg).config.services.qtap.devTools;
    in
    (builtins.tryEval (
      builtins.deepSeq [
        c.listenAddress
        c.idleTimeout
        c.allowUsers
        c.allowGroups
      ] true
    )).success;
  inherit (system.config.systemd) units;
  service = units."qtap-devtools.service".text;
  socket = units."qtap-devtools.socket".text;
  expect =
    what: text: needle:
    lib.assertMsg (lib.hasInfix needle text) "qtap module: ${what} lacks `${needle}`:\n${text}";
in
assert expect "the service override" service "ExecStart=\n";
assert expect "the service override" service "--enable-dev-tools --log-level debug --idle-timeout 90s --allow-user alice --allow-user 1001 --allow-group wheel";
assert lib.assertMsg (!(lib.hasInfix "--allow-remote" service)) "qtap module: --allow-remote without allowRemote";
assert expect "the unix socket override" unixSocket "ListenStream=/run/qtap/devtools.sock";
assert expect "the unix socket override" unixSocket "SocketMode=0666";
assert lib.assertMsg (failedAssertions { listenAddress = "0.0.0.0:10001"; } != [ ])
  "qtap module: a non-loopback listenAddress without allowRemote must fail an assertion";
assert lib.assertMsg (failedAssertions {
  listenAddress = "0.0.0.0:10001";
  allowRemote = true;
} == [ ]) "qtap module: allowRemote must allow a non-loopback listenAddress";
assert lib.assertMsg (!evaluates { listenAddress = "localhost:10001"; }) "qtap module: a host name must not evaluate as listenAddress";
assert lib.assertMsg (!evaluates { listenAddress = "127.0.0.1:99999"; }) "qtap module: port 99999 must not evaluate";
assert lib.assertMsg (!evaluates { idleTimeout = "1h30"; }) "qtap module: idleTimeout 1h30 must not evaluate";
assert lib.assertMsg (!evaluates { allowUsers = [ "a b" ]; }) "qtap module: a user name with a space must not evaluate";
assert expect "the socket override" socket "ListenStream=\nListenStream=[::1]:10002";
assert lib.assertMsg (lib.elem "sockets.target" system.config.systemd.sockets.qtap-devtools.wantedBy)
  "qtap module: qtap-devtools.socket is not wanted by sockets.target";
assert lib.assertMsg (system.config.systemd.packages != [ ])
  "qtap module: the package's units are not in systemd.packages";
runCommand "qtap-module-check" { } ''
  echo ok > $out
''
