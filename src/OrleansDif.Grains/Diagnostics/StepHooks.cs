using System.Collections.Concurrent;

namespace OrleansDif.Grains;

/// <summary>
/// Named points in the writeback path where a test can pause a step and release it later, instead of
/// sleeping. Nothing pauses unless a gate was armed; an armed gate catches the first pass only.
/// Gates are per volume, so concurrent tests on different volumes do not interfere.
/// </summary>
public static class StepHooks
{
    /// <summary>Writeback grain: pages moved to Writeback, data not yet sent to the disk.</summary>
    public const string WritebackBegun = "writeback-begun";
    /// <summary>Writeback grain, unstable policy: tags computed, page not yet read again for the transfer.</summary>
    public const string BeforeTransfer = "before-transfer";
    /// <summary>Disk grain: a write command passed its checks and is about to be persisted.</summary>
    public const string DiskCommand = "disk-command";
    /// <summary>Page grain: a write or store started waiting for writeback to end.</summary>
    public const string WriteHeld = "write-held";
    /// <summary>Page grain: a writeback lease expired and the page went back to Dirty.</summary>
    public const string LeaseExpired = "lease-expired";

    /// <summary>Page grain: a deactivating page's content was written by the flusher and its disk flushed.</summary>
    public const string PageEvicted = "page-evicted";
    /// <summary>Page grain: an activation finished its deactivation (content handed over, intent cleared).</summary>
    public const string PageDeactivated = "page-deactivated";
    /// <summary>Writeback grain: a disk accepted a command; its pages' writebacks are not ended yet.</summary>
    public const string CommandLanded = "command-landed";

    private static readonly ConcurrentDictionary<(string Volume, string Step), Gate> s_gates = new();

    /// <summary>Arms a gate: the next pass of <paramref name="step"/> on <paramref name="volume"/> signals and waits.</summary>
    public static Gate Arm(string volume, string step, bool autoRelease = false)
    {
        var gate = new Gate(autoRelease);
        s_gates[(volume, step)] = gate;
        return gate;
    }

    internal static Task PassAsync(string volume, string step)
    {
        if (s_gates.IsEmpty || !s_gates.TryRemove((volume, step), out Gate? gate))
        {
            return Task.CompletedTask;
        }
        gate.Signal();
        return gate.Released;
    }

    public sealed class Gate
    {
        private readonly TaskCompletionSource _reached = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

        internal Gate(bool autoRelease)
        {
            if (autoRelease)
            {
                _released.SetResult();
            }
        }

        /// <summary>Completes when the step reached the gate.</summary>
        public Task Reached => _reached.Task;

        internal Task Released => _released.Task;

        internal void Signal() => _reached.TrySetResult();

        /// <summary>Lets the paused step go on.</summary>
        public void Release() => _released.TrySetResult();
    }
}
