using System.Runtime.InteropServices;

namespace Payments.LocalCluster;

/// <summary>kill(2) for the signals .NET's Process API does not send: pausing a member is how we simulate a
/// stalled node (GC pause, frozen VM) whose TCP connections stay open but silent.</summary>
public static partial class NativeSignals
{
    // Linux x86-64 and arm64 numbers.
    public const int SigCont = 18;
    public const int SigStop = 19;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    public static void Send(int pid, int signal)
    {
        if (Kill(pid, signal) != 0)
        {
            throw new InvalidOperationException($"kill({pid}, {signal}) failed with errno {Marshal.GetLastPInvokeError()}.");
        }
    }
}
