"""What make_seeds.py and make_seeds_h2.py share: turning a conversation into one seed
input `[flags, n-1, schedule[n], payload]` (layout: fuzz_targets/common/mod.rs)."""
import os


def steps_for(server, data):
    """Schedule steps feeding `data` from one side: pieces of k*k + 1 bytes."""
    out = []
    while data:
        k = 0
        while (k + 1) * (k + 1) + 1 <= len(data) and k + 1 <= 31:
            k += 1
        n = k * k + 1
        out.append(((0x80 if server else 0) | k, data[:n]))
        data = data[n:]
    return out


def write_seed(path, convo, flags, gap=None):
    """Writes the seed for `convo` ([(server?, bytes)]), with an optional gap
    `(after step i, on the server side?, k)`: a loss of k + 1 bytes."""
    steps = []
    for i, (server, data) in enumerate(convo):
        steps += steps_for(server, data)
        if gap is not None and i == gap[0]:
            steps.append(((0x80 if gap[1] else 0) | 0x60 | gap[2], b""))
    assert 0 < len(steps) <= 32, (path, len(steps))
    sched = bytes(s for s, _ in steps)
    payload = b"".join(d for _, d in steps)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(bytes([flags, len(sched) - 1]) + sched + payload)
