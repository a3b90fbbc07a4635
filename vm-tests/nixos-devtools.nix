# NixOS VM test of services.qtap.devTools (nix flake check / nix build .#checks.x86_64-linux.vm-devtools):
#  - the socket listens and the service is not running;
#  - the first request activates it (Type=notify: active means READY=1) and succeeds;
#  - a TLS request inside the VM (nginx, self-signed certificate, curl -k with an
#    Authorization header) appears on the SSE stream with that header;
#  - the journal shows the probes attached;
#  - after the client leaves the probes are detached, and after the idle timeout the
#    service has exited (cleanly) while the socket listens again.
# The same scenario runs without Nix on Debian kernels: vm-tests/systemd-appliance.
{ pkgs, module }:
let
  cert =
    pkgs.runCommand "qtap-test-cert" { nativeBuildInputs = [ pkgs.openssl ]; }
      ''
        mkdir -p $out
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=localhost \
          -addext subjectAltName=DNS:localhost -keyout $out/key.pem -out $out/cert.pem
      '';
in
pkgs.testers.runNixOSTest {
  name = "qtap-devtools";

  nodes.machine =
    { pkgs, ... }:
    {
      imports = [ module ];
      services.qtap.devTools = {
        enable = true;
        idleTimeout = "20s";
        logLevel = "info";
      };

      services.nginx = {
        enable = true;
        virtualHosts.localhost = {
          onlySSL = true;
          sslCertificate = "${cert}/cert.pem";
          sslCertificateKey = "${cert}/key.pem";
          locations."/".return = "200 'hello over tls\\n'";
        };
      };

      environment.systemPackages = with pkgs; [
        curl
        bpftools
        procps
      ];
      virtualisation.memorySize = 1536;
      virtualisation.cores = 2;
    };

  testScript = ''
    import json

    H = "-H 'Host: localhost:10001'"
    API = "http://127.0.0.1:10001/devtools/api"

    def state(unit):
        return machine.succeed(f"systemctl show -p ActiveState --value {unit}").strip()

    def tracing_progs():
        # tracepoints and uprobes only: systemd's own cgroup programs come and go with units
        return int(machine.succeed(
            "bpftool prog show | grep -cE '^[0-9]+: (tracepoint|kprobe|raw_tracepoint|tracing|perf_event) ' || true"
        ).strip() or 0)

    machine.wait_for_unit("sockets.target")
    machine.wait_for_unit("nginx.service")

    with subtest("the socket listens, nothing runs"):
        machine.wait_for_unit("qtap-devtools.socket")
        # (not wait_for_open_port: its probe connection would start the service)
        machine.succeed("ss -Hltn 'sport = :10001' | grep -q '127.0.0.1:10001'")
        assert state("qtap-devtools.service") == "inactive", state("qtap-devtools.service")
        machine.fail("pgrep -x qtap")
        base = tracing_progs()

    with subtest("the first request activates the service and succeeds"):
        health = json.loads(machine.succeed(f"curl -sf {H} {API}/health"))
        assert "attached" in health, health
        machine.wait_until_succeeds(
            "test \"$(systemctl show -p ActiveState --value qtap-devtools.service)\" = active"
        )
        machine.succeed("journalctl -u qtap-devtools.service -o cat | grep -q 'using the socket passed by systemd'")

    with subtest("an SSE client attaches the probes"):
        machine.succeed(
            "systemd-run --unit=sse-client --property=StandardOutput=file:/tmp/sse.txt "
            f"curl -sN {H} {API}/events"
        )
        machine.wait_until_succeeds("grep -q '^event: system.connected' /tmp/sse.txt", timeout=60)
        machine.wait_until_succeeds(
            "journalctl -u qtap-devtools.service -o cat | grep -q 'probes attached'", timeout=60
        )
        assert tracing_progs() > base

    with subtest("a TLS request reaches the stream with its Authorization header"):
        machine.succeed(
            "curl -sfk -H 'Authorization: Bearer nixos-vm-secret-2024' https://localhost/tls-check"
        )
        machine.wait_until_succeeds(
            "grep '^data:' /tmp/sse.txt | grep '/tls-check' | grep -q 'nixos-vm-secret-2024'", timeout=30
        )
        lines = machine.succeed("grep '^data:' /tmp/sse.txt | grep '/tls-check'").splitlines()
        txs = [json.loads(l[len("data:"):])["data"]["transaction"] for l in lines]
        tls = [t for t in txs if t.get("tls") and t["request"]["path"] == "/tls-check"]
        assert tls, txs
        assert ["Authorization", "Bearer nixos-vm-secret-2024"] in tls[0]["request"]["headers"], tls[0]

    with subtest("the client leaves: probes detached"):
        machine.succeed("systemctl stop sse-client")
        machine.wait_until_succeeds(
            "journalctl -u qtap-devtools.service -o cat | grep -q 'probes detached'", timeout=30
        )
        machine.wait_until_succeeds(f"test $(bpftool prog show | grep -cE '^[0-9]+: (tracepoint|kprobe|raw_tracepoint|tracing|perf_event) ' || true) -le {base}", timeout=15)

    with subtest("after the idle timeout the service has exited; the socket listens again"):
        machine.wait_until_succeeds(
            "test \"$(systemctl show -p ActiveState --value qtap-devtools.service)\" = inactive", timeout=90
        )
        assert machine.succeed("systemctl show -p Result --value qtap-devtools.service").strip() == "success"
        assert state("qtap-devtools.socket") == "active"
        machine.fail("pgrep -x qtap")
        machine.succeed(f"curl -sf {H} {API}/health")
  '';
}
