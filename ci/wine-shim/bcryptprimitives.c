/*
 * A stand-in bcryptprimitives.dll for running the Windows test executables under
 * Wine 8.0 (Debian bookworm) only. Never shipped, never used on real Windows.
 *
 * Rust's standard library for x86_64-pc-windows-gnu gets its random bytes (the
 * seed of HashMap's hasher) from ProcessPrng in bcryptprimitives.dll. Wine 8.0
 * does not export that function, so a Rust executable fails to load there.
 * This DLL exports ProcessPrng and fills the buffer with RtlGenRandom
 * (advapi32's SystemFunction036), which Wine has implemented for a long time.
 *
 * Built by scripts/setup-windows.sh with x86_64-w64-mingw32-gcc and copied
 * beside each test executable by ci/wine-run.sh.
 */
#include <windows.h>

/* RtlGenRandom's real name; declared here because the mingw headers only
 * declare it under a macro that depends on the SDK version. */
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

/* ProcessPrng: fills `data` with `len` random bytes; always returns TRUE on
 * Windows, which callers rely on. Here a failure of RtlGenRandom is passed on
 * as FALSE, so the caller can at least notice. */
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}

BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, LPVOID reserved)
{
    (void)instance;
    (void)reason;
    (void)reserved;
    return TRUE;
}
