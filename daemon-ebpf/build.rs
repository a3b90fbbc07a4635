//! Makes cargo rebuild the kernel programs when bpf-linker changes, and tells the code
//! which architecture's registers a probe reads (`bpf_target_arch`, as aya-ebpf sees it:
//! `CARGO_CFG_BPF_TARGET_ARCH` when set through RUSTFLAGS, else `AYA_BPF_TARGET_ARCH`,
//! else the host's).
fn main() {
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
    println!(
        "cargo:rustc-check-cfg=cfg(bpf_target_arch, values(\"x86_64\", \"aarch64\", \"arm\", \"riscv64\", \"powerpc64\", \"s390x\", \"mips\", \"mips64\", \"loongarch64\"))"
    );
    println!("cargo:rerun-if-env-changed=AYA_BPF_TARGET_ARCH");
    println!("cargo:rerun-if-env-changed=HOST");
    if std::env::var_os("CARGO_CFG_BPF_TARGET_ARCH").is_some() {
        return;
    }
    let arch = std::env::var("AYA_BPF_TARGET_ARCH").unwrap_or_else(|_| {
        let host = std::env::var("HOST").unwrap_or_default();
        host.split('-').next().unwrap_or("x86_64").to_string()
    });
    let arch = match arch.as_str() {
        "i686" | "x86" => "x86_64",
        a if a.starts_with("arm") => "arm",
        a if a.starts_with("riscv64") => "riscv64",
        a => a,
    };
    println!("cargo:rustc-cfg=bpf_target_arch=\"{arch}\"");
}
