fn main() {
    let mut cap = match qtap::capture::Capture::start(Default::default()) {
        Ok(c) => c,
        Err(e) => { eprintln!("error: {e}"); std::process::exit(1) }
    };
    for p in cap.probes() { eprintln!("{p:?}"); }
    let t0 = std::time::Instant::now();
    let mut out = Vec::new();
    while t0.elapsed().as_secs() < 6 {
        cap.poll(std::time::Duration::from_millis(100), &mut out).unwrap();
        for r in out.drain(..) {
            match r { Ok(qtap::capture::Record::Data{pid,fd,dir,source,bytes,pos,..}) => eprintln!("DATA pid={pid} fd={fd} {dir:?} {source:?} pos={pos} {:?}", String::from_utf8_lossy(&bytes[..bytes.len().min(60)])),
              other => eprintln!("{other:?}") }
        }
    }
    eprintln!("drops {:?}", cap.take_drops());
}
