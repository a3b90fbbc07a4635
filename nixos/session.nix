# `nix run`: a one-off DevTools session in the foreground (Ctrl-C ends it; nothing is
# left behind). Loading eBPF programs needs root or five capabilities: without them it says
# so, and how to run it, instead of failing deep inside the daemon.
{
  lib,
  writeShellApplication,
  coreutils,
  gawk,
  qtap,
}:
writeShellApplication {
  name = "qtap-devtools-session";
  runtimeInputs = [
    coreutils
    gawk
  ];
  text = ''
    # CAP_DAC_READ_SEARCH (2), CAP_SYS_PTRACE (19), CAP_SYS_ADMIN (21), CAP_PERFMON (38), CAP_BPF (39)
    need=$(( (1 << 2) | (1 << 19) | (1 << 21) | (1 << 38) | (1 << 39) ))
    have=$(( 16#$(awk '/^CapEff:/ {print $2}' /proc/self/status) ))
    if [ "$(id -u)" -ne 0 ] && [ $(( have & need )) -ne "$need" ]; then
      self=$(readlink -f "$0")
      cat >&2 <<MSG
    qtap DevTools needs root: it loads eBPF probes into the kernel (or, without root, the
    capabilities CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN, CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH).
    Run this same session as root:

      sudo $self $*

    or keep it installed and socket-activated: services.qtap.devTools.enable = true (NixOS),
    then open http://localhost:10001/devtools/.
    MSG
      exit 1
    fi
    echo "qtap DevTools session: Ctrl-C stops it. From another machine: ssh -L 10001:localhost:10001 $(uname -n)" >&2
    exec ${lib.getExe qtap} --enable-dev-tools "$@"
  '';
}
