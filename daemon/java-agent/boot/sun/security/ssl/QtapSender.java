package sun.security.ssl;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.attribute.PosixFileAttributes;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.UserPrincipal;
import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

/**
 * The agent's one thread: finds the daemons' sockets in the directory the daemon gave
 * (each daemon binds {@code <its pid>.sock} there), connects to each, and writes the
 * queued messages to all of them. Application threads only append to a bounded queue;
 * what does not fit is dropped and counted, and the counts are sent to the daemons.
 * With no daemon connected the hooks are off and this thread only looks at the
 * directory's modification time four times a second.
 */
final class QtapSender {
    static final int HELLO = 1, OPEN = 2, DATA = 3, DROPS = 5, HEARTBEAT = 6;
    static final int PROTOCOL = 1;
    static final int CHUNK = 64 * 1024;
    static final long MAX_QUEUED = 16L << 20;

    static volatile long session;
    private static Path dir;
    private static UserPrincipal owner;
    private static Thread thread;
    private static final ConcurrentLinkedQueue<byte[]> QUEUE = new ConcurrentLinkedQueue<>();
    private static final AtomicLong QUEUED = new AtomicLong();
    private static final AtomicLong DROPPED_MSGS = new AtomicLong();
    private static final AtomicLong DROPPED_BYTES = new AtomicLong();
    private static final Map<String, SocketChannel> CHANS = new HashMap<>();
    /** sockets that refused us, with the directory mtime at the time */
    private static final Map<String, Long> REFUSED = new HashMap<>();

    private QtapSender() {}

    static void init(String d) {
        dir = Paths.get(d);
        try {
            // trust on first use: the directory as the daemon made it just before loading us
            owner = Files.getOwner(dir, LinkOption.NOFOLLOW_LINKS);
        } catch (IOException e) {
            owner = null;
        }
    }

    static void start() {
        Thread t = new Thread(QtapSender::run, "qtap-java-agent");
        t.setDaemon(true);
        thread = t;
        t.start();
    }

    static boolean offer(byte[] m) {
        if (QUEUED.addAndGet(m.length) > MAX_QUEUED) {
            QUEUED.addAndGet(-m.length);
            DROPPED_MSGS.incrementAndGet();
            DROPPED_BYTES.addAndGet(Math.max(0, m.length - 22));
            return false;
        }
        QUEUE.add(m);
        Thread t = thread;
        if (t != null) LockSupport.unpark(t);
        return true;
    }

    private static void run() {
        long lastMtime = Long.MIN_VALUE;
        long nextFull = 0;
        long lastSend = System.nanoTime();
        long sentDropMsgs = 0;
        long sentDropBytes = 0;
        while (true) {
            try {
                long now = System.nanoTime();
                long mtime = mtime();
                if (mtime != lastMtime || now - nextFull >= 0) {
                    if (mtime != lastMtime) REFUSED.clear();
                    lastMtime = mtime;
                    nextFull = now + TimeUnit.SECONDS.toNanos(5);
                    if (scan()) {
                        sentDropMsgs = DROPPED_MSGS.get();
                        sentDropBytes = DROPPED_BYTES.get();
                    }
                }
                if (CHANS.isEmpty()) {
                    QtapHooks.on = false;
                    byte[] m;
                    while ((m = QUEUE.poll()) != null) QUEUED.addAndGet(-m.length);
                    LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(250));
                    continue;
                }
                boolean any = false;
                byte[] m;
                while ((m = QUEUE.poll()) != null) {
                    QUEUED.addAndGet(-m.length);
                    sendAll(m);
                    any = true;
                }
                long dm = DROPPED_MSGS.get();
                long db = DROPPED_BYTES.get();
                if (dm != sentDropMsgs) {
                    QtapMsg d = new QtapMsg(DROPS, 16);
                    d.u64(dm - sentDropMsgs).u64(db - sentDropBytes);
                    sentDropMsgs = dm;
                    sentDropBytes = db;
                    sendAll(d.done());
                    any = true;
                }
                now = System.nanoTime();
                if (any) {
                    lastSend = now;
                } else if (now - lastSend > TimeUnit.SECONDS.toNanos(1)) {
                    // finds a daemon that went away while nothing was sent
                    sendAll(new QtapMsg(HEARTBEAT, 0).done());
                    lastSend = now;
                }
                if (!any) LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(200));
            } catch (Throwable t) {
                LockSupport.parkNanos(TimeUnit.SECONDS.toNanos(1));
            }
        }
    }

    private static long mtime() {
        try {
            return Files.getLastModifiedTime(dir, LinkOption.NOFOLLOW_LINKS).toMillis();
        } catch (IOException e) {
            return -1;
        }
    }

    /** the directory is still the daemon's: same owner, nobody else may write into it */
    private static boolean trusted() throws IOException {
        PosixFileAttributes a = Files.readAttributes(dir, PosixFileAttributes.class,
                LinkOption.NOFOLLOW_LINKS);
        if (!a.isDirectory() || owner == null || !a.owner().equals(owner)) return false;
        return !a.permissions().contains(PosixFilePermission.GROUP_WRITE)
                && !a.permissions().contains(PosixFilePermission.OTHERS_WRITE);
    }

    /** connects to daemons not connected yet; true when one was added */
    private static boolean scan() throws IOException {
        if (!trusted()) return false;
        boolean added = false;
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir, "*.sock")) {
            for (Path p : ds) {
                String name = p.getFileName().toString();
                if (CHANS.containsKey(name) || REFUSED.containsKey(name)) continue;
                SocketChannel ch = null;
                try {
                    ch = SocketChannel.open(StandardProtocolFamily.UNIX);
                    ch.connect(UnixDomainSocketAddress.of(p));
                    QtapMsg h = new QtapMsg(HELLO, 2 + 8 + 2 + version().length);
                    byte[] v = version();
                    h.u16(PROTOCOL).u64(ProcessHandle.current().pid()).u16(v.length)
                            .bytes(v, 0, v.length);
                    write(ch, h.done());
                    CHANS.put(name, ch);
                    added = true;
                } catch (IOException | RuntimeException e) {
                    REFUSED.put(name, 0L);
                    if (ch != null) {
                        try {
                            ch.close();
                        } catch (IOException e2) {
                            // gone anyway
                        }
                    }
                }
            }
        }
        if (added) {
            // every connection announces itself again, to the new daemon too
            session++;
            QtapHooks.on = true;
        }
        return added;
    }

    private static byte[] version() {
        String v = System.getProperty("java.runtime.version", System.getProperty("java.version", "?"));
        return v.getBytes(StandardCharsets.UTF_8);
    }

    private static void sendAll(byte[] m) {
        Iterator<Map.Entry<String, SocketChannel>> it = CHANS.entrySet().iterator();
        while (it.hasNext()) {
            Map.Entry<String, SocketChannel> e = it.next();
            try {
                write(e.getValue(), m);
            } catch (IOException | RuntimeException ex) {
                try {
                    e.getValue().close();
                } catch (IOException ex2) {
                    // closing a dead socket
                }
                it.remove();
            }
        }
        if (CHANS.isEmpty()) QtapHooks.on = false;
    }

    private static void write(SocketChannel ch, byte[] m) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(m);
        while (b.hasRemaining()) ch.write(b);
    }
}
