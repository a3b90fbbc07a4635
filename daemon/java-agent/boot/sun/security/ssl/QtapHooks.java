package sun.security.ssl;

import java.net.InetAddress;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.util.Map;
import java.util.WeakHashMap;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLSocket;

/**
 * Called by the instrumented JSSE methods. The agent defines this class (and QtapSender,
 * QtapMsg) inside java.base's own package sun.security.ssl, next to the classes that call
 * it: nothing is appended to the boot class path. Every entry point returns at once when
 * no daemon listens, and catches everything: nothing here may disturb the application.
 */
public final class QtapHooks {
    /** true while at least one daemon is connected */
    static volatile boolean on;
    private static boolean installed;

    /** per-thread state between a method's entry and its return, one slot per hooked method */
    private static final ThreadLocal<Call[]> CALLS = new ThreadLocal<Call[]>() {
        @Override
        protected Call[] initialValue() {
            return new Call[4];
        }
    };

    /** per engine or socket: the id the daemon knows it by, stream positions */
    private static final Map<Object, Conn> CONNS = new WeakHashMap<>();
    private static long nextId = 1;

    static final class Call {
        Object target;
        ByteBuffer[] bufs;
        int off;
        int len;
        int[] pos;
        byte[] b;
        int boff;
        int blen;
    }

    static final class Conn {
        long id;
        long[] pos = new long[2];
        long session = -1;
    }

    private QtapHooks() {}

    /** false when an agent was installed before (the jar loaded a second time) */
    public static synchronized boolean install(String dir, String jar) {
        if (installed) return false;
        installed = true;
        QtapSender.init(dir);
        return true;
    }

    public static void start() {
        QtapSender.start();
    }

    /** kind 0: wrap (plaintext in srcs), 1: unwrap (plaintext out in dsts) */
    public static void engineEnter(Object engine, ByteBuffer[] srcs, int soff, int slen,
            ByteBuffer[] dsts, int doff, int dlen, int kind) {
        if (!on) return;
        try {
            Call c = new Call();
            c.target = engine;
            if (kind == 0) {
                c.bufs = srcs;
                c.off = soff;
                c.len = slen;
            } else {
                c.bufs = dsts;
                c.off = doff;
                c.len = dlen;
            }
            c.pos = new int[c.len];
            for (int i = 0; i < c.len; i++) {
                ByteBuffer b = c.bufs[c.off + i];
                c.pos[i] = b == null ? -1 : b.position();
            }
            CALLS.get()[kind] = c;
        } catch (Throwable t) {
            // never into the application
        }
    }

    /** kind 2: AppOutputStream.write, 3: AppInputStream.read */
    public static void streamEnter(Socket sock, byte[] b, int off, int len, int kind) {
        if (!on) return;
        try {
            Call c = new Call();
            c.target = sock;
            c.b = b;
            c.boff = off;
            c.blen = len;
            CALLS.get()[kind] = c;
        } catch (Throwable t) {
            // never into the application
        }
    }

    /** before each return of a hooked method; `ret` is read()'s result */
    public static void exit(int ret, int kind) {
        if (!on) return;
        try {
            Call[] slots = CALLS.get();
            Call c = slots[kind];
            if (c == null) return;
            slots[kind] = null;
            byte[] data;
            if (kind < 2) {
                int total = 0;
                for (int i = 0; i < c.len; i++) {
                    ByteBuffer b = c.bufs[c.off + i];
                    if (b != null && c.pos[i] >= 0 && b.position() > c.pos[i]) {
                        total += b.position() - c.pos[i];
                    }
                }
                if (total == 0) return;
                data = new byte[total];
                int at = 0;
                for (int i = 0; i < c.len; i++) {
                    ByteBuffer b = c.bufs[c.off + i];
                    if (b != null && c.pos[i] >= 0 && b.position() > c.pos[i]) {
                        int n = b.position() - c.pos[i];
                        ByteBuffer d = b.duplicate();
                        d.limit(b.position());
                        d.position(c.pos[i]);
                        d.get(data, at, n);
                        at += n;
                    }
                }
            } else {
                int n = kind == 2 ? c.blen : ret;
                if (n <= 0 || c.b == null || c.boff < 0 || c.boff + n > c.b.length) return;
                data = new byte[n];
                System.arraycopy(c.b, c.boff, data, 0, n);
            }
            // wrap and write send; unwrap and read receive
            emit(c.target, kind == 0 || kind == 2 ? 1 : 0, data);
        } catch (Throwable t) {
            // never into the application
        }
    }

    private static void emit(Object target, int dir, byte[] data) {
        Conn c;
        synchronized (CONNS) {
            c = CONNS.get(target);
            if (c == null) {
                c = new Conn();
                c.id = nextId++;
                CONNS.put(target, c);
            }
        }
        synchronized (c) {
            long session = QtapSender.session;
            if (c.session != session) {
                c.session = session;
                QtapSender.offer(open(c.id, target));
            }
            long pos = c.pos[dir];
            c.pos[dir] += data.length;
            for (int at = 0; at < data.length; at += QtapSender.CHUNK) {
                int n = Math.min(QtapSender.CHUNK, data.length - at);
                QtapMsg m = new QtapMsg(QtapSender.DATA, 8 + 1 + 8 + n);
                m.u64(c.id).u8(dir).u64(pos + at).bytes(data, at, n);
                if (!QtapSender.offer(m.done())) {
                    // counted as dropped by offer; the daemon also sees the gap in positions
                }
            }
        }
    }

    private static byte[] open(long id, Object target) {
        boolean client = false;
        boolean socket = false;
        InetAddress local = null;
        InetAddress remote = null;
        int lport = 0;
        int rport = 0;
        String host = null;
        try {
            if (target instanceof SSLSocket) {
                SSLSocket s = (SSLSocket) target;
                socket = true;
                client = s.getUseClientMode();
                local = s.getLocalAddress();
                lport = Math.max(0, s.getLocalPort());
                remote = s.getInetAddress();
                rport = Math.max(0, s.getPort());
            } else if (target instanceof SSLEngine) {
                SSLEngine e = (SSLEngine) target;
                client = e.getUseClientMode();
                host = e.getPeerHost();
                rport = Math.max(0, e.getPeerPort());
            }
        } catch (Throwable t) {
            // what is known is sent
        }
        byte[] la = local == null ? new byte[0] : local.getAddress();
        byte[] ra = remote == null ? new byte[0] : remote.getAddress();
        byte[] h = host == null ? new byte[0] : host.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        if (h.length > 1024) h = new byte[0];
        QtapMsg m = new QtapMsg(QtapSender.OPEN, 8 + 1 + 1 + la.length + 2 + 1 + ra.length + 2 + 2 + h.length);
        m.u64(id).u8((client ? 1 : 0) | (socket ? 2 : 0));
        m.u8(la.length).bytes(la, 0, la.length).u16(lport);
        m.u8(ra.length).bytes(ra, 0, ra.length).u16(rport);
        m.u16(h.length).bytes(h, 0, h.length);
        return m.done();
    }
}
