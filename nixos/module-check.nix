# A cheap check (no VM): evaluate a NixOS system with non-default options and assert the
# unit overrides the module generates. The VM test (vm-tests/nixos-devtools.nix) runs them.
{
  lib,
  nixosSystem,
  runCommand,
  module,
}:
let
  system = nixosSystem {
    system = "x86_64-linux";
    modules = [
      module
      {
        boot.isContainer = true;
        system.stateVersion = "25.11";
        services.qtap.devTools = {
          enable = true;
          listenAddress = "[::1]:10002";
          logLevel = "debug";
          idleTimeout = "90s";
        };
      }
    ];
  };
  inherit (system.config.systemd) units;
  service = units."qtap-devtools.service".text;
  socket = units."qtap-devtools.socket".text;
  expect =
    what: text: needle:
    lib.assertMsg (lib.hasInfix needle text) "qtap module: ${what} lacks `${needle}`:\n${text}";
in
assert expect "the service override" service "ExecStart=\n";
assert expect "the service override" service "--enable-dev-tools --log-level debug --idle-timeout 90s";
assert expect "the socket override" socket "ListenStream=\nListenStream=[::1]:10002";
assert lib.assertMsg (lib.elem "sockets.target" system.config.systemd.sockets.qtap-devtools.wantedBy)
  "qtap module: qtap-devtools.socket is not wanted by sockets.target";
assert lib.assertMsg (system.config.systemd.packages != [ ])
  "qtap module: the package's units are not in systemd.packages";
runCommand "qtap-module-check" { } ''
  echo ok > $out
''
