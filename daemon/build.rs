//! Builds the kernel programs (`daemon-ebpf`) for `bpfel-unknown-none` with the nightly
//! toolchain (through aya-build) and leaves the object in OUT_DIR as `qtap`, where
//! `capture` embeds it.
//!
//! Where there is no rustup (Nix builds), aya-build uses the toolchain on PATH, which
//! must then be a nightly with rust-src (or a stable one with `RUSTC_BOOTSTRAP=1`) and
//! `bpf-linker` on PATH. `AYA_BUILD_SKIP=1` skips the kernel side for quick user-space
//! unit-test cycles: the binary then refuses to capture and says why.
use anyhow::Context as _;
use std::path::Path;
use std::process::Command;

fn main() -> anyhow::Result<()> {
    java_agent()?;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("daemon/ has no parent directory")?
        .join("daemon-ebpf");
    let root = root.to_str().context("non-UTF-8 path to daemon-ebpf")?;
    println!("cargo:rerun-if-changed=../daemon-common/src");
    println!("cargo:rerun-if-env-changed=QTAP_EBPF_TOOLCHAIN");
    let toolchain = std::env::var("QTAP_EBPF_TOOLCHAIN").ok();
    let toolchain = match toolchain.as_deref() {
        Some(t) => aya_build::Toolchain::Custom(t),
        None => aya_build::Toolchain::Nightly,
    };
    aya_build::build_ebpf(
        [aya_build::Package { name: "qtap-ebpf", root_dir: root, ..Default::default() }],
        toolchain,
    )
    .context("building the eBPF programs failed — run `.ci/setup` (installs nightly rust-src and bpf-linker)")?;
    let obj = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("qtap");
    if !obj.exists() {
        // AYA_BUILD_SKIP=1: an empty object, refused at run time with a clear message.
        std::fs::write(&obj, b"")?;
    }
    Ok(())
}

/// Compiles `java-agent/` with `javac` and packs it with `jar` into
/// `OUT_DIR/qtap-java-agent.jar`, which `capture::java` embeds. Without a JDK the jar is
/// empty: the build goes on, says so, and the binary reports Java capture as unavailable.
/// `JAVAC`/`JAR` name the tools; by default `$JAVA_HOME/bin/…`, else the ones on PATH.
fn java_agent() -> anyhow::Result<()> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("java-agent");
    println!("cargo:rerun-if-changed=java-agent");
    println!("cargo:rerun-if-env-changed=JAVA_HOME");
    println!("cargo:rerun-if-env-changed=JAVAC");
    println!("cargo:rerun-if-env-changed=JAR");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let jar_out = out.join("qtap-java-agent.jar");
    let tool = |var: &str, name: &str| {
        std::env::var(var)
            .ok()
            .unwrap_or_else(|| match std::env::var("JAVA_HOME") {
                Ok(h) if Path::new(&h).join("bin").join(name).exists() => {
                    Path::new(&h).join("bin").join(name).display().to_string()
                }
                _ => name.to_string(),
            })
    };
    let (javac, jar) = (tool("JAVAC", "javac"), tool("JAR", "jar"));
    let classes = out.join("java-agent-classes");
    let _ = std::fs::remove_dir_all(&classes);
    std::fs::create_dir_all(&classes)?;
    let java_files = |dir: &Path| -> anyhow::Result<Vec<std::path::PathBuf>> {
        let mut found = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
                let p = e?.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "java") {
                    found.push(p);
                }
            }
        }
        found.sort();
        Ok(found)
    };
    let javac_run = |args: &[std::ffi::OsString]| -> Option<String> {
        match Command::new(&javac)
            .args([
                "-nowarn",
                "-source",
                "16",
                "-target",
                "16",
                "-Xlint:-options",
            ])
            .args(args)
            .output()
        {
            Err(e) => Some(format!("cannot run {javac}: {e}")),
            Ok(o) if !o.status.success() => Some(format!(
                "{javac} failed: {}",
                String::from_utf8_lossy(&o.stderr)
            )),
            Ok(_) => None,
        }
    };
    // the hooks live in java.base's sun.security.ssl (the agent defines them there at
    // run time), packed under boot/ so no class loader finds them by name
    let boot = src.join("boot");
    let mut args: Vec<std::ffi::OsString> = vec![
        "--patch-module".into(),
        format!("java.base={}", boot.display()).into(),
        "-d".into(),
        classes.join("boot").into(),
    ];
    args.extend(java_files(&boot)?.into_iter().map(Into::into));
    let mut compiled = javac_run(&args);
    if compiled.is_none() {
        let mut args: Vec<std::ffi::OsString> = vec![
            "--add-exports".into(),
            "java.base/jdk.internal.org.objectweb.asm=ALL-UNNAMED".into(),
            "-d".into(),
            classes.clone().into(),
        ];
        args.extend(java_files(&src.join("src"))?.into_iter().map(Into::into));
        compiled = javac_run(&args);
    }
    let failed = match compiled {
        Some(why) => Some(why),
        None => {
            let manifest = out.join("java-agent-manifest.txt");
            std::fs::write(
                &manifest,
                "Agent-Class: qtap.agent.Agent\nCan-Retransform-Classes: true\nCan-Redefine-Classes: true\n",
            )?;
            let _ = std::fs::remove_file(&jar_out);
            match Command::new(&jar)
                .arg("--create")
                .arg("--file")
                .arg(&jar_out)
                .arg("--manifest")
                .arg(&manifest)
                .arg("-C")
                .arg(&classes)
                .arg(".")
                .output()
            {
                Err(e) => Some(format!("cannot run {jar}: {e}")),
                Ok(o) if !o.status.success() => Some(format!(
                    "{jar} failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                )),
                Ok(_) => None,
            }
        }
    };
    if let Some(why) = failed {
        println!(
            "cargo:warning=Java capture is unavailable in this build: {} (install a JDK ≥ 17, e.g. Debian's openjdk-17-jdk-headless, and rebuild)",
            why.lines().next().unwrap_or("")
        );
        std::fs::write(&jar_out, b"")?;
    }
    Ok(())
}
