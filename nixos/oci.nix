# OCI image: `docker load < $(nix build --print-out-paths .#oci)`, then
#
#   docker run --rm --privileged --pid=host --network=host \
#     -v /sys:/sys -v /var/run/docker.sock:/var/run/docker.sock qtap-devtools:VERSION
#
# and open http://localhost:10001/devtools/. The entrypoint is qtap itself; the image sets
# ENABLE_DEV_TOOLS=true, which qtap reads like --enable-dev-tools (a Kubernetes manifest or
# `-e ENABLE_DEV_TOOLS=true` says the same); arguments after the image name go to qtap
# (e.g. `--listen 127.0.0.1:10002`, or `trace` for NDJSON on stdout). The host's pid
# namespace and /sys are what the probes need; the Docker socket names containers.
{
  lib,
  dockerTools,
  qtap,
}:
dockerTools.buildLayeredImage {
  name = "qtap-devtools";
  tag = qtap.version;
  # qtap (also as /bin/qtap), and /etc/passwd and /etc/group with root and nobody for the
  # user names in attribution
  contents = [
    qtap
    dockerTools.fakeNss
  ];
  extraCommands = ''
    mkdir -p tmp
    chmod 1777 tmp
  '';
  config = {
    Entrypoint = [ (lib.getExe qtap) ];
    Env = [ "ENABLE_DEV_TOOLS=true" ];
    ExposedPorts."10001/tcp" = { };
    Labels = {
      "org.opencontainers.image.title" = "qtap-devtools";
      "org.opencontainers.image.description" = qtap.meta.description;
      "org.opencontainers.image.version" = qtap.version;
    };
  };
}
