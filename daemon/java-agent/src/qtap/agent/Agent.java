package qtap.agent;

import java.io.InputStream;
import java.lang.instrument.ClassFileTransformer;
import java.lang.invoke.MethodHandles;
import java.util.ArrayList;
import java.util.Enumeration;
import java.util.List;
import java.util.jar.JarEntry;
import java.lang.instrument.Instrumentation;
import java.security.ProtectionDomain;
import java.util.Map;
import java.util.Set;
import java.util.jar.JarFile;

import jdk.internal.org.objectweb.asm.ClassReader;
import jdk.internal.org.objectweb.asm.ClassVisitor;
import jdk.internal.org.objectweb.asm.ClassWriter;
import jdk.internal.org.objectweb.asm.MethodVisitor;
import jdk.internal.org.objectweb.asm.Opcodes;

/**
 * The qtap Java agent, loaded into a running JVM by the qtap daemon through the HotSpot
 * attach mechanism. It adds calls to {@code qtap.agent.boot.Hooks} around the methods of
 * JSSE that see the plaintext of TLS connections:
 * <ul>
 * <li>{@code sun.security.ssl.SSLEngineImpl.wrap/unwrap} (the 6-argument forms every other
 * overload delegates to): java.net.http.HttpClient, com.sun.net.httpserver.HttpsServer, Netty
 * with the JDK provider, ...</li>
 * <li>{@code SSLSocketImpl$AppOutputStream.write(byte[],int,int)} and
 * {@code SSLSocketImpl$AppInputStream.read(byte[],int,int)}: HttpsURLConnection, blocking
 * servers.</li>
 * </ul>
 * The hooks ({@code sun.security.ssl.QtapHooks}, under {@code boot/} in the jar) are defined
 * in java.base's package {@code sun.security.ssl}, next to their callers.
 * The hooks never throw into the application and do nothing while no daemon listens.
 * Loading it twice is harmless: the second load sees the first one and only returns.
 */
public final class Agent {
    static final String ENGINE = "sun/security/ssl/SSLEngineImpl";
    static final String OUT = "sun/security/ssl/SSLSocketImpl$AppOutputStream";
    static final String IN = "sun/security/ssl/SSLSocketImpl$AppInputStream";
    static final String HOOKS = "sun/security/ssl/QtapHooks";

    private Agent() {}

    public static void agentmain(String args, Instrumentation inst) throws Exception {
        String dir = "/tmp/.qtap-java";
        if (args != null) {
            for (String kv : args.split(",")) {
                if (kv.startsWith("dir=")) dir = kv.substring(4);
            }
        }
        Module base = Object.class.getModule();
        Module me = Agent.class.getModule();
        // ASM for the transformer; sun.security.ssl opened to define the hooks in it
        inst.redefineModule(base, Set.of(),
                Map.of("jdk.internal.org.objectweb.asm", Set.of(me)),
                Map.of("sun.security.ssl", Set.of(me)), Set.of(), Map.of());
        Class<?> engine = Class.forName("sun.security.ssl.SSLEngineImpl", false, null);
        Class<?> hooks;
        try {
            hooks = Class.forName("sun.security.ssl.QtapHooks", false, null);
        } catch (ClassNotFoundException e) {
            hooks = defineHooks(engine);
        }
        if (!(Boolean) hooks.getMethod("install", String.class, String.class)
                .invoke(null, dir, "")) {
            return; // loaded before: the first agent does the work
        }
        inst.addTransformer(new Transformer(), true);
        Class<?>[] targets = {
            engine,
            Class.forName("sun.security.ssl.SSLSocketImpl$AppOutputStream", false, null),
            Class.forName("sun.security.ssl.SSLSocketImpl$AppInputStream", false, null),
        };
        inst.retransformClasses(targets);
        hooks.getMethod("start").invoke(null);
    }

    /** Defines the classes under boot/ of this jar in java.base's sun.security.ssl. */
    private static Class<?> defineHooks(Class<?> engine) throws Exception {
        MethodHandles.Lookup l = MethodHandles.privateLookupIn(engine, MethodHandles.lookup());
        String jar = Agent.class.getProtectionDomain().getCodeSource().getLocation().getPath();
        Class<?> hooks = null;
        try (JarFile jf = new JarFile(jar)) {
            List<JarEntry> entries = new ArrayList<>();
            for (Enumeration<JarEntry> en = jf.entries(); en.hasMoreElements();) {
                JarEntry e = en.nextElement();
                if (e.getName().startsWith("boot/") && e.getName().endsWith(".class")) {
                    entries.add(e);
                }
            }
            for (JarEntry e : entries) {
                byte[] b;
                try (InputStream in = jf.getInputStream(e)) {
                    b = in.readAllBytes();
                }
                Class<?> c = l.defineClass(b);
                if (c.getName().equals("sun.security.ssl.QtapHooks")) hooks = c;
            }
        }
        if (hooks == null) throw new IllegalStateException("qtap agent jar without its hooks");
        return hooks;
    }

    public static final class Transformer implements ClassFileTransformer {
        public Transformer() {}

        @Override
        public byte[] transform(Module module, ClassLoader loader, String name,
                Class<?> redefined, ProtectionDomain pd, byte[] bytes) {
            if (loader != null || name == null) return null;
            if (!name.equals(ENGINE) && !name.equals(OUT) && !name.equals(IN)) return null;
            try {
                ClassReader r = new ClassReader(bytes);
                ClassWriter w = new ClassWriter(r, ClassWriter.COMPUTE_MAXS);
                r.accept(new Rewriter(w, name), 0);
                return w.toByteArray();
            } catch (Throwable t) {
                System.err.println("qtap agent: cannot instrument " + name + ": " + t);
                return null;
            }
        }
    }

    static final class Rewriter extends ClassVisitor {
        private final String cls;

        Rewriter(ClassVisitor cv, String cls) {
            super(Opcodes.ASM7, cv);
            this.cls = cls;
        }

        @Override
        public MethodVisitor visitMethod(int access, String name, String desc, String sig,
                String[] exc) {
            MethodVisitor mv = super.visitMethod(access, name, desc, sig, exc);
            String six = "([Ljava/nio/ByteBuffer;II[Ljava/nio/ByteBuffer;II)"
                    + "Ljavax/net/ssl/SSLEngineResult;";
            if (cls.equals(ENGINE) && desc.equals(six)
                    && (name.equals("wrap") || name.equals("unwrap"))) {
                return new Hooked(mv, name.equals("wrap") ? 0 : 1, Opcodes.ARETURN);
            }
            if (cls.equals(OUT) && name.equals("write") && desc.equals("([BII)V")) {
                return new Hooked(mv, 2, Opcodes.RETURN);
            }
            if (cls.equals(IN) && name.equals("read") && desc.equals("([BII)I")) {
                return new Hooked(mv, 3, Opcodes.IRETURN);
            }
            return mv;
        }

        /** Calls Hooks.enterN(this, args...) first and Hooks.exitN(...) before each return. */
        final class Hooked extends MethodVisitor {
            private final int kind;
            private final int ret;

            Hooked(MethodVisitor mv, int kind, int ret) {
                super(Opcodes.ASM7, mv);
                this.kind = kind;
                this.ret = ret;
            }

            @Override
            public void visitCode() {
                super.visitCode();
                if (kind < 2) {
                    for (int i = 0; i <= 6; i++) {
                        visitVarInsn(i == 0 || i == 1 || i == 4 ? Opcodes.ALOAD : Opcodes.ILOAD, i);
                    }
                    visitLdcInsn(kind);
                    visitMethodInsn(Opcodes.INVOKESTATIC, HOOKS, "engineEnter",
                            "(Ljava/lang/Object;[Ljava/nio/ByteBuffer;II[Ljava/nio/ByteBuffer;III)V",
                            false);
                } else {
                    // the SSLSocketImpl this stream belongs to (the synthetic outer field)
                    visitVarInsn(Opcodes.ALOAD, 0);
                    visitFieldInsn(Opcodes.GETFIELD, cls, "this$0",
                            "Lsun/security/ssl/SSLSocketImpl;");
                    visitVarInsn(Opcodes.ALOAD, 1);
                    visitVarInsn(Opcodes.ILOAD, 2);
                    visitVarInsn(Opcodes.ILOAD, 3);
                    visitLdcInsn(kind);
                    visitMethodInsn(Opcodes.INVOKESTATIC, HOOKS, "streamEnter",
                            "(Ljava/net/Socket;[BIII)V", false);
                }
            }

            @Override
            public void visitInsn(int op) {
                if (op == ret) {
                    if (op == Opcodes.IRETURN) {
                        visitInsn(Opcodes.DUP);
                    } else {
                        visitLdcInsn(-1);
                    }
                    visitLdcInsn(kind);
                    visitMethodInsn(Opcodes.INVOKESTATIC, HOOKS, "exit", "(II)V", false);
                }
                super.visitInsn(op);
            }
        }
    }
}
