package sun.security.ssl;

/** One framed message: u32 length of what follows (big-endian), u8 type, fields. */
final class QtapMsg {
    private final byte[] b;
    private int at;

    QtapMsg(int type, int len) {
        b = new byte[4 + 1 + len];
        u32(1 + len);
        u8(type);
    }

    QtapMsg u8(int v) {
        b[at++] = (byte) v;
        return this;
    }

    QtapMsg u16(int v) {
        return u8(v >>> 8).u8(v);
    }

    QtapMsg u32(int v) {
        return u16(v >>> 16).u16(v);
    }

    QtapMsg u64(long v) {
        return u32((int) (v >>> 32)).u32((int) v);
    }

    QtapMsg bytes(byte[] src, int off, int n) {
        System.arraycopy(src, off, b, at, n);
        at += n;
        return this;
    }

    byte[] done() {
        if (at != b.length) throw new IllegalStateException("message size");
        return b;
    }
}
