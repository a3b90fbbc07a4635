package qtap.agent.boot;

/** One framed message: u32 length of what follows (big-endian), u8 type, fields. */
final class Msg {
    private final byte[] b;
    private int at;

    Msg(int type, int len) {
        b = new byte[4 + 1 + len];
        u32(1 + len);
        u8(type);
    }

    Msg u8(int v) {
        b[at++] = (byte) v;
        return this;
    }

    Msg u16(int v) {
        return u8(v >>> 8).u8(v);
    }

    Msg u32(int v) {
        return u16(v >>> 16).u16(v);
    }

    Msg u64(long v) {
        return u32((int) (v >>> 32)).u32((int) v);
    }

    Msg bytes(byte[] src, int off, int n) {
        System.arraycopy(src, off, b, at, n);
        at += n;
        return this;
    }

    byte[] done() {
        if (at != b.length) throw new IllegalStateException("message size");
        return b;
    }
}
