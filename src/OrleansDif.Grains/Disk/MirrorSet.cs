using OrleansDif.Protection;

namespace OrleansDif.Grains;

/// <summary>What a mirror set's primary does with one page slot after comparing it with a copy.</summary>
public enum MirrorAction
{
    /// <summary>Both copies hold the same version, pass every check and hold the same bytes.</summary>
    InSync,
    /// <summary>The primary is good and the copy is not (a failed check, an older version, other bytes): write the primary's to it.</summary>
    WriteCopy,
    /// <summary>The primary failed a check and the copy holds the same version and passes every check: write the copy's to the primary.</summary>
    RepairPrimary,
    /// <summary>The copy holds a newer version than the primary (the primary lost a write its page will write again): wait.</summary>
    CopyAhead,
    /// <summary>Neither can serve the slot: the primary failed a check and the copy cannot stand in (failed too, or another version).</summary>
    Unrepairable,
}

/// <summary>One copy's page slot as read for a comparison: its bytes and tuples, the version its fence holds, and the first failed check.</summary>
public readonly record struct SlotRead(byte[] Data, byte[] Pi, long Held, ProtectionFailure? Failure)
{
    public bool Good => Failure is null;
}

/// <summary>
/// The dirty-region record of a mirror set, kept by its primary (copy 0), as md keeps a write-intent bitmap for a
/// raid1: for each other copy, which page slots it may not hold as the primary does. Plain transitions, no Orleans
/// types, unit-tested one by one; <see cref="DiskGrain"/> is the shell that sends the commands.
/// <list type="bullet">
/// <item>A copy that took a command holds it in its write cache (<see cref="Wrote"/>: the slot, the copy's activation
/// and its landing sequence); a flush of the same activation up to that sequence makes it held
/// (<see cref="Flushed"/>).</item>
/// <item>A copy that failed a command, or answered from another activation (its cache, and what the primary wrote
/// into it, is gone), has those slots out of sync and stale: it may hold older bytes than the primary, and does not
/// stand in for it (<see cref="CanStandIn"/>) until a page command or a resync writes the slot whole again.</item>
/// <item>Every slot is out of sync, unverified, when the primary starts, since the record lives with it
/// (<see cref="AllOutOfSync"/>: a full comparison, as md resyncs a raid1 without a bitmap).</item>
/// <item>A resync compares an out-of-sync slot (<see cref="Judge"/>) and takes it off the record when it is done
/// (<see cref="Resynced"/>), unless the slot went out of sync again meanwhile; one it cannot settle yet goes to
/// the back (<see cref="Defer"/>), so that it does not hold up the others.</item>
/// </list>
/// A copy stands in for the primary only when the record does not know it stale, it holds the same page version,
/// and it passes every check, the version tags included (<see cref="Judge"/>; a mirrored volume keeps version
/// tags, and its disks take page commands only). A timeout only ever makes a copy less trusted.
/// </summary>
public sealed class MirrorSet
{
    private sealed class Copy
    {
        public long Boot;
        public readonly Dictionary<long, long> Unflushed = [];  // slot → landing sequence in Boot's cache
        public readonly Dictionary<long, long> OutOfSync = [];  // slot → the record's sequence when it went out of sync
        public readonly HashSet<long> Stale = [];                // out of sync because a write did not reach it
    }

    private readonly Copy[] _copies;
    private readonly long _slots;
    private long _sequence;

    public MirrorSet(int copies, long slots)
    {
        if (copies is < 2 or > 3 || slots <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(copies), $"a mirror set has 2 or 3 copies of at least one slot ({copies}, {slots})");
        }
        _copies = new Copy[copies];
        for (int c = 1; c < copies; c++)
        {
            _copies[c] = new Copy();
        }
        _slots = slots;
    }

    public int Copies => _copies.Length;

    /// <summary>Slots resynced (written to a copy from the primary) since the record began.</summary>
    public long ResyncedSlots { get; private set; }

    /// <summary>Slots out of sync on any copy now.</summary>
    public int OutOfSyncCount
    {
        get
        {
            int n = 0;
            for (int c = 1; c < _copies.Length; c++)
            {
                n += _copies[c].OutOfSync.Count;
            }
            return n;
        }
    }

    /// <summary>Whether copy <paramref name="copy"/> is recorded out of sync at <paramref name="slot"/>.</summary>
    public bool IsOutOfSync(int copy, long slot) => At(copy).OutOfSync.ContainsKey(slot);

    /// <summary>
    /// Whether copy <paramref name="copy"/> may stand in for the primary at <paramref name="slot"/>: not when a write
    /// of the slot did not reach it (it may hold older bytes under the same version). An unverified slot (the primary
    /// started) may: the version and the checks decide.
    /// </summary>
    public bool CanStandIn(int copy, long slot) => !At(copy).Stale.Contains(slot);

    /// <summary>Slots copy <paramref name="copy"/> holds only in its write cache.</summary>
    public int UnflushedCount(int copy) => At(copy).Unflushed.Count;

    /// <summary>Every slot of every copy out of sync: the primary starts without a record.</summary>
    public void AllOutOfSync()
    {
        for (int c = 1; c < _copies.Length; c++)
        {
            for (long s = 0; s < _slots; s++)
            {
                MarkOutOfSync(_copies[c], s, stale: false);
            }
        }
    }

    /// <summary>
    /// Copy <paramref name="copy"/> took a command for <paramref name="count"/> slots from <paramref name="slot"/> into
    /// the cache of its activation <paramref name="boot"/>, as its <paramref name="landed"/>-th landing: the slots are
    /// whole again (no longer stale). An answer from another activation than the one the record knows means the cache
    /// the record counted on is gone. Answers may come in any order: a slot waits for the flush of its last landing.
    /// </summary>
    public void Wrote(int copy, long slot, int count, long boot, long landed)
    {
        Copy c = At(copy);
        Rebooted(c, boot);
        for (long s = slot; s < slot + count; s++)
        {
            CheckSlot(s);
            c.Unflushed[s] = c.Unflushed.TryGetValue(s, out long earlier) ? Math.Max(earlier, landed) : landed;
            c.Stale.Remove(s);
        }
    }

    /// <summary>Copy <paramref name="copy"/> did not take a command for these slots (refused, or no answer).</summary>
    public void Failed(int copy, long slot, int count)
    {
        Copy c = At(copy);
        for (long s = slot; s < slot + count; s++)
        {
            CheckSlot(s);
            c.Unflushed.Remove(s);
            MarkOutOfSync(c, s, stale: true);
        }
    }

    /// <summary>
    /// Copy <paramref name="copy"/> flushed activation <paramref name="boot"/>'s cache up to landing
    /// <paramref name="upTo"/>: those slots are held on its medium.
    /// </summary>
    public void Flushed(int copy, long boot, long upTo)
    {
        Copy c = At(copy);
        if (Rebooted(c, boot))
        {
            return;
        }
        List<long>? done = null;
        foreach (var (slot, landed) in c.Unflushed)
        {
            if (landed <= upTo)
            {
                (done ??= []).Add(slot);
            }
        }
        if (done is not null)
        {
            foreach (long s in done)
            {
                c.Unflushed.Remove(s);
            }
        }
    }

    /// <summary>
    /// Up to <paramref name="max"/> out-of-sync slots of <paramref name="copy"/>, longest waiting first, each with its
    /// record sequence (for <see cref="Resynced"/>).
    /// </summary>
    public List<(long Slot, long Sequence)> ToResync(int copy, int max)
    {
        var list = new List<(long Slot, long Sequence)>(At(copy).OutOfSync.Count);
        foreach (var (slot, sequence) in At(copy).OutOfSync)
        {
            list.Add((slot, sequence));
        }
        list.Sort((a, b) => a.Sequence.CompareTo(b.Sequence));
        return list.Count > max ? list.GetRange(0, max) : list;
    }

    /// <summary>A slot a resync could not settle yet (a copy ahead, no answer): to the back of the queue, as it was (stale or not).</summary>
    public void Defer(int copy, long slot, long sequence)
    {
        Copy c = At(copy);
        if (c.OutOfSync.TryGetValue(slot, out long now) && now == sequence)
        {
            c.OutOfSync[slot] = ++_sequence;
        }
    }

    /// <summary>
    /// A resync found <paramref name="slot"/> of <paramref name="copy"/> as the primary holds it (or made it so): off
    /// the record, unless it went out of sync again after <paramref name="sequence"/> (a command failed meanwhile).
    /// <paramref name="wrote"/>: the resync wrote the slot (counted).
    /// </summary>
    public void Resynced(int copy, long slot, long sequence, bool wrote)
    {
        Copy c = At(copy);
        if (c.OutOfSync.TryGetValue(slot, out long now) && now == sequence)
        {
            c.OutOfSync.Remove(slot);
            c.Stale.Remove(slot);
        }
        if (wrote)
        {
            ResyncedSlots++;
        }
    }

    /// <summary>
    /// The comparison of one slot: what the primary does with it. A copy stands in for the primary only when it
    /// holds the same version and passes every check; the primary's bytes go to a copy only when the primary passes
    /// every check and the copy does not hold a newer version.
    /// </summary>
    public static MirrorAction Judge(SlotRead primary, SlotRead copy)
    {
        if (!primary.Good)
        {
            return copy.Good && copy.Held == primary.Held ? MirrorAction.RepairPrimary : MirrorAction.Unrepairable;
        }
        if (copy.Held > primary.Held)
        {
            return MirrorAction.CopyAhead;
        }
        return copy.Good && copy.Held == primary.Held && primary.Data.AsSpan().SequenceEqual(copy.Data) && primary.Pi.AsSpan().SequenceEqual(copy.Pi)
            ? MirrorAction.InSync
            : MirrorAction.WriteCopy;
    }

    private bool Rebooted(Copy c, long boot)
    {
        if (c.Boot == boot)
        {
            return false;
        }
        bool lost = c.Boot != 0;
        if (lost)
        {
            // The activation that cached these is gone, and its cache with it.
            foreach (long s in c.Unflushed.Keys)
            {
                MarkOutOfSync(c, s, stale: true);
            }
            c.Unflushed.Clear();
        }
        c.Boot = boot;
        return lost;
    }

    private void MarkOutOfSync(Copy c, long slot, bool stale)
    {
        c.OutOfSync[slot] = ++_sequence;
        if (stale)
        {
            c.Stale.Add(slot);
        }
    }

    private Copy At(int copy) => copy >= 1 && copy < _copies.Length
        ? _copies[copy]
        : throw new ArgumentOutOfRangeException(nameof(copy), $"copy {copy} is not one of copies 1..{_copies.Length - 1}");

    private void CheckSlot(long slot)
    {
        if (slot < 0 || slot >= _slots)
        {
            throw new ArgumentOutOfRangeException(nameof(slot), $"slot {slot} is outside 0..{_slots - 1}");
        }
    }
}
