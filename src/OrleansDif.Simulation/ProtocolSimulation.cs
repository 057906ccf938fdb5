using OrleansDif.Grains;
using OrleansDif.Protection;

namespace OrleansDif.Simulation;

/// <summary>
/// A deterministic simulation of the writeback protocol, the FoundationDB way: the classes the grains are shells around
/// (<see cref="PageMachine"/> for each page activation, <see cref="CommandBuilder"/> and <see cref="DurabilityLedger"/>
/// for the flusher, <see cref="DiskDevice"/> over a <see cref="CachedDisk"/> with its volatile cache for each disk)
/// run in one thread under a scheduler seeded by <see cref="SimulationOptions.Seed"/>. Each step is one message or
/// event the cluster can see, in any order the seed picks: a write, a store through a mapping, a read, the flusher
/// beginning a writeback, building its command, the transfer (the disk checks and lands it), its end, a lease expiry,
/// a disk flush, an fsync and its completion, the loss of a page activation, of the flusher, of a disk activation
/// (its cache), a power loss (all of them), and faults (memory bit flip, transit bit flip, media bit rot, and a lost, torn or
/// misdirected write by the disk). After every
/// step the invariants (<see cref="Invariant"/>) are checked against a model of what clients were told; the schedule
/// ends with a fault-free drain: everything written back, fsynced, and every page loaded again and compared.
/// <para>
/// The grain shells' own glue (Orleans messaging, timers, persistence of intents) is not in the simulation: the
/// order of their calls is, since every call is a step the seed may interleave with any other.
/// </para>
/// </summary>
public sealed class ProtocolSimulation : IDisposable
{
    private const int TraceKept = 400;

    private readonly SimulationOptions _o;
    private readonly Random _rng;
    private readonly VolumeConfig _config;
    private readonly string _directory;
    private readonly SimulationResult _result;
    private readonly DiskImage[] _images;
    private readonly DiskDevice[] _disks;
    private readonly long[][] _claims;        // per disk, per page: the epoch a page activation claimed on this disk activation
    private readonly Slot[] _slots;
    private readonly Dictionary<(int Page, long Version), byte[]> _contents = []; // every acknowledged version's page
    private readonly List<Flight> _flights = [];
    private readonly SortedSet<int> _dirty = [];
    private DurabilityLedger _ledger;
    private long _incarnation = 1;
    private CommandBuilder _builder;
    private Fsync? _fsync;
    private int _step;
    private readonly Queue<string> _trace = new();
    private ulong _hash = 14695981039346656037UL;

    private sealed class Slot(int page, long lba, int disk)
    {
        public int Page { get; } = page;
        public long Lba { get; } = lba;
        public int Disk { get; } = disk;
        public PageMachine? Machine;
        public long Generation;          // registrations of this activation
        public long Mapping;             // a writable mapping of this activation (0: none)
        public byte[] Expected = [];     // what clients wrote, as the active page should hold it
        public bool ExpectedKnown;       // false while poisoned: no content to expect until a whole-page write
        public long Synced;              // the newest version an acknowledged fsync covered
        public readonly Dictionary<int, Taint> Taints = [];   // sectors of the active page's memory a fault changed
        public readonly HashSet<long> RottedLbas = [];         // media bit rot on the medium, not yet overwritten
        public readonly HashSet<long> RotDetected = [];        // of those, the ones a check caught
        public readonly Dictionary<long, CommandFault> Damage = [];       // LBAs of the page a faulty disk command damaged on the medium
        public readonly Dictionary<long, CommandFault> CachedDamage = []; // ... in its disk's cache, not flushed yet
        public bool InCache;                                    // a command for the page is in its disk's cache: the next flush writes the slot
        public bool PoisonSeen;
        public int FlipsInjected;        // memory faults ever injected into this page (any activation)
        // The write intent and the acknowledgement table, as the page grain keeps them:
        public long IntentEpoch;         // the activation that registered with a flusher (0: none)
        public long IntentFlusher;       // the flusher activation it registered with last
        public bool TableGood;           // its table entry outlived it (no power loss since it registered)
        public long LastAcked;           // the last version that activation acknowledged (0: none)
        public long DirtyLogEntry;       // the page's slot of the volume's dirty log (stable storage: outlives a power loss)
        public (long Epoch, long Flusher, long LastAcked, bool TableGood, long PeriodStart)? Question; // of a dead activation, asked at the next load
    }

    /// <summary>
    /// A memory fault in a sector: whether the sector has lost its cached tag since (the known window), and whether its
    /// outcome was counted (each injected fault has exactly one: the first of detected, masked, silent in the window).
    /// </summary>
    private sealed class Taint
    {
        public bool Window;
        public bool Settled;
    }

    private enum Outcome { Detected, Masked, Window }

    /// <summary>
    /// A faulty disk command (lost, torn or misdirected write): the LBAs that hold its damage, in a disk's cache or on
    /// the medium, and its one outcome: detected (a load of a page holding it failed its check) or masked (every LBA
    /// it damaged was written over, or a crash dropped it from the cache, before any load).
    /// </summary>
    private sealed class CommandFault(string kind)
    {
        public string Kind { get; } = kind;
        public int Lbas;
        public bool Settled;
    }

    private void Settle(CommandFault f, Outcome outcome)
    {
        if (f.Settled)
        {
            return;
        }
        f.Settled = true;
        if (outcome == Outcome.Detected)
        {
            Fault(f.Kind).Detected++;
        }
        else
        {
            Fault(f.Kind).Masked++;
        }
    }

    /// <summary>LBA <paramref name="lba"/> no longer holds <paramref name="f"/>'s damage: the last one settles it as masked, if nothing detected it.</summary>
    private void Overwritten(CommandFault f)
    {
        if (--f.Lbas == 0)
        {
            Settle(f, Outcome.Masked);
        }
    }

    private void DropDamage(Dictionary<long, CommandFault> damage, Func<long, bool>? which = null)
    {
        foreach (long lba in damage.Keys.Where(l => which?.Invoke(l) ?? true).ToList())
        {
            Overwritten(damage[lba]);
            damage.Remove(lba);
        }
    }

    private void Settle(Taint t, Outcome outcome)
    {
        if (t.Settled)
        {
            return;
        }
        t.Settled = true;
        FaultCounts f = Fault("memory-bitflip");
        switch (outcome)
        {
            case Outcome.Detected: f.Detected++; break;
            case Outcome.Masked: f.Masked++; break;
            default: f.SilentInWindow++; break;
        }
    }

    private sealed class Flight(Slot slot, PageMachine machine, WritebackSnapshot snapshot)
    {
        public Slot Slot { get; } = slot;
        public PageMachine Machine { get; } = machine;
        public WritebackSnapshot Snapshot { get; } = snapshot;
        public DiskCommand? Command;
        public bool Sent;
        public bool Accepted;
        public long Boot;
        public bool TransitFlip;
        public bool Orphaned;            // its flusher died: only its lease can end it
    }

    private sealed class Fsync
    {
        public readonly Dictionary<int, (long Version, long Epoch)> Want = [];
        public int Checks;
    }

    private ProtocolSimulation(SimulationOptions options, string directory)
    {
        options.Validate();
        _o = options;
        _rng = new Random(options.Seed);
        _directory = directory;
        _result = new SimulationResult { Options = options };
        _config = new VolumeConfig
        {
            Id = "sim",
            Pages = options.Pages,
            Disks = 2,
            StripePages = 2,
            Policy = options.Policy,
            TagsAtCopyIn = options.TagsAtCopyIn,
            StoreTags = options.StoreTags,
            DirtyLog = options.DirtyLog,
            Guard = options.Guard,
        };
        _images = new DiskImage[_config.Disks];
        _disks = new DiskDevice[_config.Disks];
        _claims = new long[_config.Disks][];
        Directory.CreateDirectory(directory);
        for (int d = 0; d < _config.Disks; d++)
        {
            _images[d] = DiskImage.Create(Path.Combine(directory, $"disk{d}.img"), SectorFormat.Of(_config.SectorSize, _config.Guard == GuardKind.Crc64), (PiType)_config.PiType, _config.SectorsPerDisk);
            _disks[d] = new DiskDevice(_config, new CachedDisk(_images[d], _config.SectorsPerPage));
            _claims[d] = new long[options.Pages];
        }
        _slots = new Slot[options.Pages];
        for (int p = 0; p < options.Pages; p++)
        {
            var (disk, lba) = _config.Locate(p);
            _slots[p] = new Slot(p, lba, disk);
            _contents[(p, 0)] = new byte[VolumeConfig.PageSize];
        }
        _ledger = new DurabilityLedger(_incarnation);
        _builder = NewBuilder();
        foreach (string kind in new[] { "memory-bitflip", "transit-bitflip", "media-bitrot", "lost-write", "torn-write", "misdirected-write" })
        {
            _result.Faults[kind] = new FaultCounts();
        }
    }

    /// <summary>Runs one schedule in <paramref name="directory"/> (created, and deleted after).</summary>
    public static SimulationResult Run(SimulationOptions options, string directory)
    {
        using var sim = new ProtocolSimulation(options, directory);
        return sim.Run();
    }

    /// <summary>A directory for a schedule's disk images: in memory where the machine has /dev/shm (flushes cost nothing there).</summary>
    public static string ScratchDirectory(int seed)
    {
        string root = Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();
        return Path.Combine(root, $"orleansdif-sim-{Environment.ProcessId}-{seed}-{Guid.NewGuid():N}");
    }

    public void Dispose()
    {
        foreach (DiskDevice d in _disks)
        {
            d?.Cache.Dispose();
        }
        foreach (DiskImage i in _images)
        {
            i?.Dispose();
        }
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private CommandBuilder NewBuilder() => new(_config, WritebackPolicies.For(_config.Policy), GrainHelpers.Scheme(_config));

    // ------------------------------------------------------------------ the schedule

    private SimulationResult Run()
    {
        var steps = new (int Weight, Func<bool> Action)[]
        {
            (24, Write), (5, Store), (8, Read), (12, BeginWriteback), (8, Build), (8, Transfer), (8, End),
            (3, ExpireLease), (6, FlushDisks), (4, StartFsync), (6, CheckFsync),
            (_o.Crashes ? 2 : 0, CrashPage), (_o.Crashes ? 1 : 0, CrashFlusher), (_o.Crashes ? 1 : 0, CrashDisk), (_o.Crashes ? 1 : 0, CrashDuringFlush), (_o.Crashes ? 1 : 0, PowerLoss),
            (_o.Faults ? 2 : 0, MemoryBitflip), (_o.Faults ? 1 : 0, MediaBitrot),
        };
        int total = steps.Sum(s => s.Weight);
        for (_step = 1; _step <= _o.Steps && _result.Violations.Count == 0; _step++)
        {
            // A step the state does not allow (nothing in flight to end, say) is drawn again, a few times at most.
            for (int attempt = 0; attempt < 8; attempt++)
            {
                int pick = _rng.Next(total);
                int i = 0;
                while (pick >= steps[i].Weight)
                {
                    pick -= steps[i].Weight;
                    i++;
                }
                if (steps[i].Action())
                {
                    break;
                }
            }
            // A dead flusher's command that was sent, of a writeback whose lease ran out: nothing is left of it.
            _flights.RemoveAll(f => f.Orphaned && f.Sent && !(ReferenceEquals(f.Slot.Machine, f.Machine) && f.Machine.WritebackId == f.Snapshot.WritebackId));
            CheckInvariants();
        }
        if (_result.Violations.Count == 0)
        {
            Drain();
        }
        _result.TraceHash = _hash;
        if (!_result.Passed || _o.KeepTrace)
        {
            _result.Trace.AddRange(_trace);
        }
        foreach (var (name, count) in _counters)
        {
            _result.Counters[name] = count;
        }
        return _result;
    }

    private readonly SortedDictionary<string, long> _counters = new(StringComparer.Ordinal);

    private void Count(string name, long by = 1) => _counters[name] = _counters.GetValueOrDefault(name) + by;

    private void Log(string what)
    {
        string line = $"{_step}: {what}";
        foreach (char c in line)
        {
            _hash = (_hash ^ c) * 1099511628211UL;
        }
        _trace.Enqueue(line);
        if (_trace.Count > TraceKept)
        {
            _trace.Dequeue();
        }
    }

    private void Violate(Invariant invariant, string detail)
    {
        Log($"VIOLATION {invariant}: {detail}");
        _result.Violations.Add(new Violation(_step, invariant, detail));
    }

    private T Pick<T>(IReadOnlyList<T> items) => items[_rng.Next(items.Count)];

    private Slot RandomSlot() => _slots[_rng.Next(_slots.Length)];

    // ------------------------------------------------------------------ page activations

    /// <summary>The page's activation, loaded from its disk first if it has none (as a grain call activates it).</summary>
    private PageMachine Active(Slot slot)
    {
        if (slot.Machine is { } m)
        {
            return m;
        }
        DiskDevice disk = _disks[slot.Disk];
        DiskPageRead stored = disk.LoadPage(slot.Lba, claim: true);
        _claims[slot.Disk][slot.Page] = stored.Epoch;
        var machine = new PageMachine(_config, slot.Page, slot.Lba);
        ProtectionFailure? failure = machine.LoadFrom(stored, $"page {slot.Page}");
        slot.Machine = machine;
        JudgeQuestion(slot, machine.LoadedVersion);
        slot.Generation = 0;
        slot.Mapping = 0;
        slot.Taints.Clear();
        slot.PoisonSeen = failure is not null;
        Count("loads");
        if (failure is not null)
        {
            Count("loads poisoned");
            slot.ExpectedKnown = false;
            List<CommandFault> damage = VisibleDamage(slot);
            bool explained = slot.RottedLbas.Count > 0 || damage.Count > 0;
            if (slot.RottedLbas.Count > 0)
            {
                // Detected (once); the rot stays on the medium until a newer version of the page is flushed over it.
                int fresh = slot.RottedLbas.Count(l => slot.RotDetected.Add(l));
                Detected("media-bitrot", fresh);
            }
            foreach (CommandFault fault in damage)
            {
                Settle(fault, Outcome.Detected); // as the rot, the damage stays until the page is written whole again
            }
            if (!explained)
            {
                Violate(Invariant.FalseDetection, $"page {slot.Page} failed its load check with no fault on the medium: {failure}");
            }
            Log($"load page {slot.Page}: poisoned ({failure.Check})");
            return machine;
        }
        if (VisibleDamage(slot) is [CommandFault undetected, ..])
        {
            Violate(Invariant.FaultUndetected, $"page {slot.Page} loaded good at {Describe(stored.HeldVersion)} over a {undetected.Kind}");
            return machine;
        }
        CheckLoaded(slot, stored);
        Log($"load page {slot.Page}: epoch {stored.Epoch} held {Describe(stored.HeldVersion)}");
        return machine;
    }

    /// <summary>
    /// The new activation found an earlier one's intent: the flusher judges, from its ledger and from what the
    /// acknowledgement table says that activation acknowledged last (nothing when a power loss took the table) and from
    /// where the dirty log says its last dirty period began (a power loss keeps it), whether
    /// it died holding acknowledged writes the disk does not have. Checked against what clients were told.
    /// </summary>
    private void JudgeQuestion(Slot slot, long loadedVersion)
    {
        if (slot.Question is not { } q)
        {
            return;
        }
        slot.Question = null;
        long table = q.TableGood ? q.LastAcked : -1;
        bool lost = _ledger.JudgeLoss(slot.Page, q.Epoch, q.Flusher, loadedVersion, table, q.PeriodStart);
        bool truth = q.LastAcked > loadedVersion;
        bool couldKnow = q.TableGood || q.Flusher == _ledger.Incarnation || q.PeriodStart >= 0;
        Count(lost ? (truth ? "losses judged lost" : couldKnow ? "losses judged lost falsely" : "losses judged lost conservatively") : "losses judged not lost");
        if (truth && !lost)
        {
            Violate(Invariant.LossNotReported, $"page {slot.Page}: activation {q.Epoch} acknowledged {Describe(q.LastAcked)}, the disk gave back {Describe(loadedVersion)}, and the flusher judged nothing lost");
        }
        else if (!truth && lost && couldKnow)
        {
            Violate(Invariant.FalseLossReport, $"page {slot.Page}: activation {q.Epoch} acknowledged {Describe(q.LastAcked)}, the disk gave back {Describe(loadedVersion)}, and the flusher judged it lost (table {(q.TableGood ? "good" : "gone")}, dirty log {(q.PeriodStart < 0 ? "none" : Describe(q.PeriodStart))}, registered with flusher {q.Flusher}, now {_ledger.Incarnation})");
        }
    }

    /// <summary>A page loaded good: its content is what clients wrote at the version the disk holds, never older than synced.</summary>
    private void CheckLoaded(Slot slot, DiskPageRead stored)
    {
        long held = stored.HeldVersion;
        if (held < slot.Synced)
        {
            Violate(Invariant.SyncedWriteLost, $"page {slot.Page} loaded {Describe(held)}, older than {Describe(slot.Synced)} which an fsync acknowledged");
        }
        if (_contents.TryGetValue((slot.Page, held), out byte[]? expected) && expected.AsSpan().SequenceEqual(stored.Data))
        {
            slot.Expected = (byte[])expected.Clone();
            slot.ExpectedKnown = true;
            return;
        }
        // Unstable reads the page again at transfer: the data of a later write of the same activation may have
        // gone out under this version's tag, and that is content a client wrote.
        if (_o.Policy == WritebackPolicy.Unstable)
        {
            foreach (var ((page, version), content) in _contents)
            {
                if (page == slot.Page && version > held && PageVersion.EpochOf(version) == PageVersion.EpochOf(held)
                    && content.AsSpan().SequenceEqual(stored.Data))
                {
                    slot.Expected = (byte[])content.Clone();
                    slot.ExpectedKnown = true;
                    Count("unstable newer content under an older version");
                    return;
                }
            }
        }
        if (_windowed.TryGetValue((slot.Page, held), out List<byte[]>? landed) && landed.FirstOrDefault(w => w.AsSpan().SequenceEqual(stored.Data)) is { } windowed)
        {
            // Memory corruption that went out in a sector with no cached tag (counted when it landed): the known window.
            slot.Expected = (byte[])windowed.Clone();
            slot.ExpectedKnown = true;
            return;
        }
        Violate(Invariant.WrongContentServed, $"page {slot.Page} loaded content that no acknowledged write of {Describe(held)} made ({Difference(slot.Page, held, stored.Data)})");
    }

    /// <summary>Content a memory fault in the known window put on a disk unchecked, by page and version.</summary>
    private readonly Dictionary<(int Page, long Version), List<byte[]>> _windowed = [];

    /// <summary>The contents of <paramref name="version"/> of <paramref name="page"/> that went out with a memory fault in the known window.</summary>
    private List<byte[]> Windowed(int page, long version)
    {
        if (!_windowed.TryGetValue((page, version), out List<byte[]>? contents))
        {
            _windowed[(page, version)] = contents = [];
        }
        return contents;
    }

    private bool Write()
    {
        Slot slot = RandomSlot();
        PageMachine m = Active(slot);
        bool whole = !slot.ExpectedKnown || _rng.Next(5) == 0;
        int size = whole ? VolumeConfig.PageSize : 1 + _rng.Next(VolumeConfig.PageSize / 2);
        int offset = whole ? 0 : _rng.Next(VolumeConfig.PageSize - size + 1);
        byte[] data = new byte[size];
        _rng.NextBytes(data);
        WriteOutcome outcome;
        DirtyEffect effect;
        try
        {
            outcome = m.Write(offset, data, out effect);
        }
        catch (StorageException e) when (e.Error == StorageError.IntegrityError)
        {
            Log($"write page {slot.Page} [{offset}+{size}]: refused, poisoned");
            Count("writes refused poisoned");
            NotePoison(slot);
            return true;
        }
        if (outcome == WriteOutcome.UnderWriteback)
        {
            Count("writes refused under writeback");
            Log($"write page {slot.Page}: EAGAIN");
            return true;
        }
        Acknowledged(slot, m, offset, data, effect, "write");
        return true;
    }

    private bool Store()
    {
        Slot slot = RandomSlot();
        PageMachine m = Active(slot);
        if (!slot.ExpectedKnown || m.Poisoned)
        {
            return false;
        }
        if (slot.Mapping == 0)
        {
            slot.Mapping = m.Map(writable: true);
        }
        int size = 1 + _rng.Next(512);
        int offset = _rng.Next(VolumeConfig.PageSize - size + 1);
        byte[] data = new byte[size];
        _rng.NextBytes(data);
        WriteOutcome outcome;
        DirtyEffect effect;
        bool faulted;
        try
        {
            outcome = m.Store(slot.Mapping, offset, data, out effect, out faulted);
        }
        catch (StorageException e) when (e.Error == StorageError.IntegrityError)
        {
            Log($"store page {slot.Page}: refused, poisoned (the tags it would drop did not match)");
            Count("stores refused poisoned");
            NotePoison(slot);
            return true;
        }
        if (outcome == WriteOutcome.UnderWriteback)
        {
            Count("stores held under writeback");
            Log($"store page {slot.Page}: held (revoked mapping)");
            return true;
        }
        if (faulted)
        {
            Count("stores faulted");
        }
        Acknowledged(slot, m, offset, data, effect, "store");
        return true;
    }

    private void Acknowledged(Slot slot, PageMachine m, int offset, byte[] data, DirtyEffect effect, string what)
    {
        if (offset == 0 && data.Length == VolumeConfig.PageSize)
        {
            slot.Expected = new byte[VolumeConfig.PageSize];
            slot.ExpectedKnown = true;
            slot.PoisonSeen = false;
        }
        data.CopyTo(slot.Expected.AsSpan(offset));
        // A memory fault in a sector the write covered whole is gone (masked); one it merged into stays.
        int size = _config.SectorSize;
        foreach (int s in slot.Taints.Keys.ToList())
        {
            if (offset <= s * size && offset + data.Length >= (s + 1) * size)
            {
                Settle(slot.Taints[s], Outcome.Masked);
                slot.Taints.Remove(s);
            }
        }
        _contents[(slot.Page, m.Version)] = (byte[])slot.Expected.Clone();
        Register(slot, m, effect);
        if (_config.DirtyLog && m.TakeOpenedPeriod(out long periodStart))
        {
            slot.DirtyLogEntry = periodStart; // durable before the write is acknowledged (the grain awaits the record)
        }
        if (slot.IntentEpoch == m.Epoch)
        {
            slot.LastAcked = m.Version; // acknowledged: the grain records it in the table before it returns
        }
        Count(what + "s");
        Log($"{what} page {slot.Page} [{offset}+{data.Length}] -> {Describe(m.Version)} ({effect})");
    }

    /// <summary>The page tells the flusher before the write is acknowledged (the grain awaits MarkDirty).</summary>
    private void Register(Slot slot, PageMachine m, DirtyEffect effect)
    {
        if (effect == DirtyEffect.Known)
        {
            return;
        }
        _ledger.Registered(slot.Page, m.Version, ++slot.Generation);
        _dirty.Add(slot.Page);
        if (slot.IntentEpoch != m.Epoch)
        {
            slot.IntentEpoch = m.Epoch;
            slot.LastAcked = 0;
            slot.TableGood = true; // recorded into the table that lives now
        }
        slot.IntentFlusher = _ledger.Incarnation;
    }

    private bool Read()
    {
        Slot slot = RandomSlot();
        PageMachine m = Active(slot);
        byte[] got;
        try
        {
            got = m.Read(0, VolumeConfig.PageSize);
        }
        catch (StorageException e) when (e.Error == StorageError.IntegrityError)
        {
            Count("reads refused");
            Log($"read page {slot.Page}: EIO");
            NotePoison(slot);
            return true;
        }
        Count("reads");
        if (!slot.ExpectedKnown)
        {
            Violate(Invariant.WrongContentServed, $"page {slot.Page} served a read while its content is unknown (poisoned earlier)");
            return true;
        }
        CompareServed(slot, got, "read");
        Log($"read page {slot.Page}: ok");
        return true;
    }

    /// <summary>Content served as good must be what clients wrote, but for a memory fault in the known window (counted).</summary>
    private void CompareServed(Slot slot, byte[] got, string how)
    {
        int size = _config.SectorSize;
        for (int s = 0; s < _config.SectorsPerPage; s++)
        {
            if (got.AsSpan(s * size, size).SequenceEqual(slot.Expected.AsSpan(s * size, size)))
            {
                continue;
            }
            if (slot.Taints.TryGetValue(s, out Taint? t) && t.Window)
            {
                // Served unchecked: silent in the window. The memory stays corrupt (a check may still catch it later).
                Settle(t, Outcome.Window);
                continue;
            }
            Violate(Invariant.WrongContentServed, $"{how} of page {slot.Page} returned sector {s} unlike what clients wrote, and no check fired");
            return;
        }
    }

    /// <summary>A page refused with EIO or was found poisoned: a fault explains it, or the check was false.</summary>
    private void NotePoison(Slot slot)
    {
        if (slot.PoisonSeen)
        {
            return;
        }
        slot.PoisonSeen = true;
        slot.ExpectedKnown = false;
        if (slot.Taints.Count > 0)
        {
            foreach (Taint t in slot.Taints.Values)
            {
                Settle(t, Outcome.Detected);
            }
            slot.Taints.Clear();
        }
        else
        {
            Violate(Invariant.FalseDetection, $"page {slot.Page} was poisoned with no memory fault in it ({slot.Machine?.PoisonReason})");
        }
    }

    // ------------------------------------------------------------------ the flusher

    private bool BeginWriteback()
    {
        if (_dirty.Count == 0)
        {
            return false;
        }
        Slot slot = _slots[Pick(_dirty.ToList())];
        PageMachine m = Active(slot);
        var id = new Guid(RandomBytes(16));
        WritebackSnapshot snapshot = m.StartWriteback(id, slot.Generation);
        switch (snapshot.Status)
        {
            case BeginStatus.Started:
                _dirty.Remove(slot.Page);
                _flights.Add(new Flight(slot, m, snapshot));
                Count("writebacks begun");
                Log($"begin writeback page {slot.Page} at {Describe(snapshot.Version)}");
                break;
            case BeginStatus.Busy:
                Log($"begin writeback page {slot.Page}: busy");
                break;
            case BeginStatus.Poisoned:
                _dirty.Remove(slot.Page);
                NotePoison(slot);
                Log($"begin writeback page {slot.Page}: poisoned");
                break;
            default:
                _dirty.Remove(slot.Page);
                Log($"begin writeback page {slot.Page}: not dirty");
                break;
        }
        return true;
    }

    private bool Build()
    {
        var ready = _flights.Where(f => f.Command is null && !f.Orphaned).ToList();
        if (ready.Count == 0)
        {
            return false;
        }
        Flight f = Pick(ready);
        f.Command = _builder.Build(f.Slot.Lba, [f.Snapshot]);
        Log($"build command page {f.Slot.Page} at {Describe(f.Snapshot.Version)}");
        return true;
    }

    private bool Transfer()
    {
        // A command built before its flusher died may still reach the disk: fencing alone must stop it landing stale.
        var ready = _flights.Where(f => f.Command is not null && !f.Sent).ToList();
        if (ready.Count == 0)
        {
            return false;
        }
        Flight f = Pick(ready);
        DiskCommand command = f.Command!;
        Slot slot = f.Slot;
        f.Sent = true;
        if (WritebackPolicies.For(_config.Policy).ReadsAgainAtTransfer)
        {
            // The controller reads the page again (DMA) now, while writers went on.
            if (!ReferenceEquals(slot.Machine, f.Machine) || f.Machine.WritebackId != f.Snapshot.WritebackId)
            {
                f.Accepted = false;
                Log($"transfer page {slot.Page}: its writeback is not current any more: failed");
                return true;
            }
            f.Machine.ContentForTransfer(f.Snapshot.WritebackId).CopyTo(command.Data, 0);
        }
        if (_o.Faults && _rng.Next(20) == 0)
        {
            int bit = _rng.Next(command.Data.Length * 8);
            command.Data[bit / 8] ^= (byte)(1 << (bit % 8));
            f.TransitFlip = true;
            Fault("transit-bitflip").Injected++;
        }
        DiskDevice disk = _disks[slot.Disk];
        long heldBefore = disk.Cache.HeldVersion(slot.Lba);
        long version = f.Snapshot.Version;
        if (disk.Verify(command.Data, command.Pi, command.Lba) is PiError error)
        {
            f.Accepted = false;
            Count("disk rejections");
            Log($"transfer page {slot.Page} at {Describe(version)}: rejected ({error.Check})");
            if (f.TransitFlip)
            {
                Detected("transit-bitflip", 1);
            }
            else if (slot.FlipsInjected > 0 && !MatchesAcknowledged(slot.Page, version, command.Data))
            {
                Count("disk rejections of memory faults"); // memory corruption in the buffer sent (counted as detected when the page poisons)
            }
            else if (_config.Policy == WritebackPolicy.Unstable)
            {
                Count("unstable guard rejections"); // the 2010 bug, shown
            }
            else
            {
                Violate(Invariant.GuardRejectionWithoutFault, $"{_config.Policy} page {slot.Page} at {Describe(version)} rejected by the disk ({error.Check}) with no fault in it");
            }
            return true;
        }
        if (f.TransitFlip)
        {
            Violate(Invariant.FaultUndetected, $"the disk accepted page {slot.Page} with a bit flipped on its way");
            return true;
        }
        CommandFault? fault = null;
        if (_o.Faults && _rng.Next(25) == 0)
        {
            fault = LandFaulty(slot, disk, command);
            if (fault is null)
            {
                f.Accepted = false;
                Count("stale commands fenced");
                Log($"transfer page {slot.Page} at {Describe(version)}: stale (disk holds {Describe(heldBefore)}), its fault with it");
                return true;
            }
        }
        else if (disk.Land(command.Lba, command.Data, command.Pi, command.Versions) == FencedWrite.Stale)
        {
            f.Accepted = false;
            Count("stale commands fenced");
            Log($"transfer page {slot.Page} at {Describe(version)}: stale (disk holds {Describe(heldBefore)})");
            return true;
        }
        if (version < heldBefore)
        {
            Violate(Invariant.StaleCommandLanded, $"page {slot.Page} at {Describe(version)} landed over {Describe(heldBefore)}");
        }
        long claimed = _claims[slot.Disk][slot.Page];
        if (PageVersion.EpochOf(version) < claimed)
        {
            Violate(Invariant.StaleCommandLanded, $"page {slot.Page} at {Describe(version)} landed after epoch {claimed} claimed the page");
        }
        f.Accepted = true;
        f.Boot = disk.Boot;
        slot.InCache = true;
        if (fault is null)
        {
            DropDamage(slot.CachedDamage); // the page's whole command is in the cache now, over any damage cached there
        }
        // Rot on the medium goes only when a flush writes this over it (FlushDisks). Content no client wrote that the
        // disk took: a memory fault in a sector with no cached tag to catch it (a tag reused would have been rejected),
        // the known window; the load that finds it counts it.
        if (!MatchesAcknowledged(slot.Page, version, command.Data))
        {
            if (slot.FlipsInjected == 0)
            {
                Violate(Invariant.WrongContentServed, $"the disk took page {slot.Page} at {Describe(version)} with content no client wrote, and no memory fault ever hit the page ({Difference(slot.Page, version, command.Data)})");
            }
            Windowed(slot.Page, version).Add((byte[])command.Data.Clone()); // the same version may land again, from another buffer
            if (_contents.TryGetValue((slot.Page, version), out byte[]? wanted))
            {
                int size = _config.SectorSize;
                foreach (var (sector, t) in slot.Taints)
                {
                    if (!command.Data.AsSpan(sector * size, size).SequenceEqual(wanted.AsSpan(sector * size, size)))
                    {
                        Settle(t, Outcome.Window); // went out unchecked
                    }
                }
            }
        }
        if (!f.Orphaned)
        {
            _ledger.Landed(slot.Page, slot.Disk, version, f.Snapshot.DirtyGeneration, disk.Boot); // a dead flusher's ledger is gone
        }
        Count("commands landed");
        Log($"transfer page {slot.Page} at {Describe(version)}: landed in disk {slot.Disk}'s cache");
        return true;
    }

    /// <summary>
    /// The disk mishandles a checked command (<see cref="DiskDevice.LandFaulty"/>): its controller records the page
    /// version as written, and the cache gets a lost write (nothing), a torn one (half of it), or a misdirected one
    /// (the data one command further on, with the tuples of the intended sectors). Marks the LBAs that now hold damage:
    /// the page's own (old data under a newer recorded version, or a torn mix) and, misdirected, the ones it went to.
    /// Null when the command was refused as stale (nothing changed).
    /// </summary>
    private CommandFault? LandFaulty(Slot slot, DiskDevice disk, DiskCommand command)
    {
        (FaultKind kind, string name) = _rng.Next(3) switch
        {
            0 => (FaultKind.LostWrite, "lost-write"),
            1 => (FaultKind.TornWrite, "torn-write"),
            _ => (FaultKind.MisdirectedWrite, "misdirected-write"),
        };
        int spp = _config.SectorsPerPage;
        int block = _config.SectorSize + _config.TupleSize;
        long elsewhere = disk.MisdirectedTarget(command.Lba, spp);
        byte[] before = new byte[spp * block];
        disk.Cache.ReadRaw(elsewhere, before);
        if (disk.LandFaulty(kind, command.Lba, command.Data, command.Pi, command.Versions) is not long went)
        {
            return null;
        }
        var fault = new CommandFault(name);
        Fault(name).Injected++;
        // Damaged: an LBA of the page that does not read what the command should have written, and, misdirected, an
        // LBA that no longer reads what it held (a lost write of content the medium holds already damages nothing).
        byte[] now = new byte[block];
        byte[] wanted = new byte[block];
        var damaged = new HashSet<(Slot Slot, long Lba)>(); // a misdirected command may land on the page's own LBAs too
        bool mixed = false;
        for (int i = 0; i < spp; i++)
        {
            command.Data.AsSpan(i * _config.SectorSize, _config.SectorSize).CopyTo(wanted);
            command.Pi.AsSpan(i * _config.TupleSize, _config.TupleSize).CopyTo(wanted.AsSpan(_config.SectorSize));
            disk.Cache.ReadRaw(command.Lba + i, now);
            if (!now.AsSpan().SequenceEqual(wanted))
            {
                mixed = true;
                if (!SameVersionIntact(disk, command.Lba + i, now, wanted))
                {
                    damaged.Add((slot, command.Lba + i));
                }
            }
        }
        if (damaged.Count == 0 && mixed && command.Versions.Length > 0)
        {
            // Every sector intact, some from an earlier landing of the same version: a mix of two buffers of one
            // version (they differ only by a memory fault in the known window), which a load may read.
            byte[] data = new byte[spp * _config.SectorSize];
            byte[] pi = new byte[spp * _config.TupleSize];
            disk.Cache.Read(command.Lba, data, pi);
            Windowed(slot.Page, command.Versions[0]).Add(data);
        }
        if (kind == FaultKind.MisdirectedWrite)
        {
            for (int i = 0; i < spp; i++)
            {
                int page = _config.PageAt(slot.Disk, went + i);
                disk.Cache.ReadRaw(went + i, now);
                if (page >= 0 && !now.AsSpan().SequenceEqual(before.AsSpan(i * block, block)))
                {
                    damaged.Add((_slots[page], went + i));
                }
            }
        }
        DropDamage(slot.CachedDamage); // the command replaced what the cache held for the page
        foreach (var (target, lba) in damaged)
        {
            if (target.CachedDamage.Remove(lba, out CommandFault? earlier))
            {
                Overwritten(earlier);
            }
            target.CachedDamage[lba] = fault;
            fault.Lbas++;
        }
        if (fault.Lbas == 0)
        {
            Settle(fault, Outcome.Masked);
        }
        Log($"transfer page {slot.Page} at {Describe(command.Versions.Length > 0 ? command.Versions[0] : 0)}: {name} ({damaged.Count} LBAs damaged, from {went})");
        return fault;
    }

    /// <summary>
    /// A sector the faulty command did not write that holds, intact, what an earlier landing of the same version wrote
    /// (its guard matches its data, its tags are the command's): nothing to find there, as a load finds nothing. The
    /// command differed only where a memory fault in the known window changed the page since that landing.
    /// </summary>
    private bool SameVersionIntact(DiskDevice disk, long lba, byte[] now, byte[] wanted)
    {
        int size = _config.SectorSize;
        // The tuples past the guard (application and reference tags) the same, and the guard matching the data.
        int guard = _config.TupleSize == 16 ? 8 : 2;
        return now.AsSpan(size + guard, _config.TupleSize - guard).SequenceEqual(wanted.AsSpan(size + guard, _config.TupleSize - guard))
            && disk.Verify(now.AsSpan(0, size), now.AsSpan(size, _config.TupleSize), lba) is null;
    }

    /// <summary>
    /// Is <paramref name="data"/> what clients wrote at <paramref name="version"/>? Under unstable, the page read again at
    /// transfer may carry a later write of the same activation.
    /// </summary>
    private bool MatchesAcknowledged(int page, long version, ReadOnlySpan<byte> data)
    {
        if (_contents.TryGetValue((page, version), out byte[]? expected) && data.SequenceEqual(expected))
        {
            return true;
        }
        if (_config.Policy != WritebackPolicy.Unstable)
        {
            return false;
        }
        foreach (var ((p, v), content) in _contents)
        {
            if (p == page && v > version && PageVersion.EpochOf(v) == PageVersion.EpochOf(version) && data.SequenceEqual(content))
            {
                return true;
            }
        }
        return false;
    }

    private bool End()
    {
        var ready = _flights.Where(f => f.Sent && !f.Orphaned).ToList();
        if (ready.Count == 0)
        {
            return false;
        }
        Flight f = Pick(ready);
        _flights.Remove(f);
        Slot slot = f.Slot;
        if (!ReferenceEquals(slot.Machine, f.Machine))
        {
            Log($"end writeback page {slot.Page}: its activation is gone");
            return true;
        }
        ulong[]? tags = f.Accepted && f.Command is not null ? _builder.WrittenTags(f.Command, 0) : null;
        EndStatus status = f.Machine.EndWriteback(f.Snapshot.WritebackId, f.Accepted, f.Boot, tags);
        if (status != EndStatus.Ended)
        {
            _dirty.Add(slot.Page);
        }
        if (status == EndStatus.StaleWriteback)
        {
            Count("ends after lease expiry");
        }
        if (f.Machine.Poisoned)
        {
            NotePoison(slot);
        }
        Log($"end writeback page {slot.Page} ({(f.Accepted ? "accepted" : "failed")}): {status}");
        return true;
    }

    private bool ExpireLease()
    {
        var current = _flights.Where(f => ReferenceEquals(f.Slot.Machine, f.Machine) && f.Machine.WritebackId == f.Snapshot.WritebackId).ToList();
        if (current.Count == 0)
        {
            return false;
        }
        Flight f = Pick(current);
        if (f.Machine.ExpireLease(f.Snapshot.WritebackId))
        {
            Register(f.Slot, f.Machine, DirtyEffect.Register); // as the grain's lease timer does: the page registers again
            Count("leases expired");
            Log($"lease of page {f.Slot.Page}'s writeback at {Describe(f.Snapshot.Version)} expired");
        }
        if (f.Orphaned)
        {
            _flights.Remove(f);
        }
        return true;
    }

    /// <summary>FLUSH CACHE on the disks with landed writes: a disk answering from another activation lost them, and their pages are dirtied again.</summary>
    private bool FlushDisks()
    {
        var work = _ledger.TakeFlushWork();
        if (work.Count == 0)
        {
            return false;
        }
        foreach (var (d, pages) in work)
        {
            DiskDevice disk = _disks[d];
            disk.Cache.FlushAsync().GetAwaiter().GetResult();
            Count("disk flushes");
            foreach (Slot slot in _slots.Where(s => s.Disk == d && s.RottedLbas.Count > 0 && s.InCache))
            {
                // Overwritten before any read, unless a faulty command left that LBA as it was (or damaged it more).
                var gone = slot.RottedLbas.Where(l => !slot.CachedDamage.ContainsKey(l)).ToList();
                Fault("media-bitrot").Masked += gone.Count(l => !slot.RotDetected.Contains(l));
                slot.RottedLbas.ExceptWith(gone);
                slot.RotDetected.ExceptWith(gone);
            }
            foreach (Slot slot in _slots.Where(s => s.Disk == d))
            {
                FlushDamage(slot);
                slot.InCache = false; // the flush wrote every cached slot to the medium
            }
            var lost = _ledger.FlushAnswered(d, pages, disk.Boot);
            foreach (var (page, version) in lost)
            {
                Slot slot = _slots[page];
                Count("landed writes lost with a disk's cache");
                if (slot.Machine is { } m && m.Redirty(version, out DirtyEffect effect))
                {
                    _dirty.Add(page);
                    Register(slot, m, effect);
                    Count("pages dirtied again");
                }
            }
            Log($"flush disk {d}: {pages.Count} pages settled, {lost.Count} lost with its cache");
        }
        return true;
    }

    /// <summary>
    /// The faulty commands whose damage a load of the page reads: what its disk's cache holds for it, and, where the
    /// cache holds nothing for an LBA (no command of the page itself is cached), what the medium holds.
    /// </summary>
    private static List<CommandFault> VisibleDamage(Slot slot)
    {
        var seen = new List<CommandFault>(slot.CachedDamage.Values.Distinct());
        if (!slot.InCache)
        {
            foreach (var (lba, fault) in slot.Damage)
            {
                if (!slot.CachedDamage.ContainsKey(lba) && !seen.Contains(fault))
                {
                    seen.Add(fault);
                }
            }
        }
        return seen;
    }

    /// <summary>A flush wrote the slot's cached LBAs to the medium: good data over old damage, or damage from the cache.</summary>
    private void FlushDamage(Slot slot)
    {
        if (slot.InCache)
        {
            DropDamage(slot.Damage, l => !slot.CachedDamage.ContainsKey(l));
        }
        foreach (var (lba, fault) in slot.CachedDamage)
        {
            if (slot.Damage.Remove(lba, out CommandFault? older))
            {
                Overwritten(older);
            }
            slot.Damage[lba] = fault;
        }
        slot.CachedDamage.Clear();
    }

    // ------------------------------------------------------------------ fsync

    private bool StartFsync()
    {
        if (_fsync is not null)
        {
            return false;
        }
        _fsync = new Fsync();
        foreach (Slot slot in _slots)
        {
            if (slot.Machine is { Poisoned: false } m && m.Version > m.LoadedVersion)
            {
                _fsync.Want[slot.Page] = (m.Version, m.Epoch);
            }
        }
        Count("fsyncs");
        Log($"fsync begins: {_fsync.Want.Count} pages to make durable");
        return true;
    }

    /// <summary>
    /// The fsync asks each page it waits for (as the grain's CheckDurable): durable once the page's writeback of the
    /// wanted version ended and its disk's medium holds it; lost when the activation died first (reported, never
    /// promised); poisoned (reported). When none is left it returns, and the durable ones are promised.
    /// </summary>
    private bool CheckFsync()
    {
        if (_fsync is null)
        {
            return false;
        }
        Fsync fsync = _fsync;
        fsync.Checks++;
        var durable = new List<(int Page, long Version)>();
        foreach (var (page, (version, epoch)) in fsync.Want.ToList())
        {
            Slot slot = _slots[page];
            PageMachine m = Active(slot);
            long flushed = _disks[slot.Disk].Cache.FlushedVersion(slot.Lba);
            if (m.Epoch != epoch)
            {
                fsync.Want.Remove(page);
                if (m.LoadedVersion >= version && flushed >= version)
                {
                    durable.Add((page, version));
                }
                else
                {
                    Count("fsync pages reported lost");
                }
            }
            else if (m.Poisoned)
            {
                fsync.Want.Remove(page);
                Count("fsync pages reported poisoned");
            }
            else if (m.DurableVersion >= version && flushed >= version)
            {
                fsync.Want.Remove(page);
                durable.Add((page, version));
            }
            else
            {
                _ledger.RequestFlush(slot.Disk);
                if (m.State == PageState.Dirty)
                {
                    _dirty.Add(page); // recovery: the flusher learns it again from the page
                }
            }
        }
        foreach (var (page, version) in durable)
        {
            _pendingPromises.Add((page, version));
        }
        if (fsync.Want.Count > 0)
        {
            Log($"fsync check: {fsync.Want.Count} pages not durable yet");
            return true;
        }
        foreach (var (page, version) in _pendingPromises)
        {
            _slots[page].Synced = Math.Max(_slots[page].Synced, version);
        }
        Log($"fsync returns: {_pendingPromises.Count} pages promised durable");
        _pendingPromises.Clear();
        _fsync = null;
        Count("fsyncs returned");
        return true;
    }

    private readonly List<(int Page, long Version)> _pendingPromises = [];

    // ------------------------------------------------------------------ crashes

    private bool CrashPage()
    {
        Slot slot = RandomSlot();
        if (slot.Machine is null)
        {
            return false;
        }
        DropActivation(slot);
        Count("page activations lost");
        Log($"page {slot.Page}'s activation lost (its silo died)");
        return true;
    }

    private void DropActivation(Slot slot)
    {
        if (slot.Machine is { } dead && slot.IntentEpoch == dead.Epoch)
        {
            // Its intent stays on disk: the next activation asks about it (an earlier question not yet asked is
            // overwritten, as the grain's single intent record is).
            long periodStart = _config.DirtyLog ? DirtyLog.PeriodStart(slot.DirtyLogEntry, slot.IntentEpoch) : -1;
            slot.Question = (slot.IntentEpoch, slot.IntentFlusher, slot.LastAcked, slot.TableGood, periodStart);
            slot.IntentEpoch = 0;
        }
        slot.Machine = null;
        slot.Mapping = 0;
        foreach (Taint t in slot.Taints.Values)
        {
            Settle(t, Outcome.Masked); // the memory it hit went away
        }
        slot.Taints.Clear();
        slot.PoisonSeen = false;
    }

    private bool CrashFlusher()
    {
        _ledger = new DurabilityLedger(++_incarnation);
        _builder = NewBuilder();
        _dirty.Clear();
        foreach (Flight f in _flights)
        {
            f.Orphaned = true; // the page stays under writeback until its lease expires
        }
        _flights.RemoveAll(f => f.Command is null && (!ReferenceEquals(f.Slot.Machine, f.Machine) || f.Machine.WritebackId != f.Snapshot.WritebackId));
        FsyncFailed("its flusher died");
        // The new flusher recovers from the pages (RecoverDirtyPages): the dirty ones, and the ones written back by
        // this activation into a disk cache the old flusher may not have flushed (adopted: a flush answering from
        // another disk activation dirties them again).
        foreach (Slot slot in _slots)
        {
            if (slot.Machine is { } m && m.DurableVersion > m.LoadedVersion && !m.Poisoned)
            {
                _ledger.Adopt(slot.Page, slot.Disk, m.DurableVersion, m.WrittenBoot);
            }
            if (slot.Machine is { State: not PageState.Clean })
            {
                _dirty.Add(slot.Page);
            }
        }
        Count("flusher activations lost");
        Log("the flusher's activation lost (its silo died)");
        return true;
    }

    private void FsyncFailed(string why)
    {
        if (_fsync is not null)
        {
            _fsync = null;
            _pendingPromises.Clear();
            Count("fsyncs failed");
            Log($"fsync fails: {why}");
        }
    }

    private bool CrashDisk()
    {
        int d = _rng.Next(_config.Disks);
        ReopenDisk(d);
        Count("disk activations lost");
        Log($"disk {d}'s activation lost: its write cache with it");
        return true;
    }

    /// <summary>
    /// A disk dies in the middle of a flush: the fence file (written first) reached the medium, and the data of only
    /// some of the flush's slots did. Its next open must set back exactly the slots whose data is not there.
    /// </summary>
    private bool CrashDuringFlush()
    {
        int d = _rng.Next(_config.Disks);
        var slots = _slots.Where(s => s.Disk == d && s.InCache).ToList();
        if (slots.Count == 0 || _slots.Any(s => s.Disk == d && s.CachedDamage.Count > 0))
        {
            return false; // (a faulty command's damage half-flushed is not modelled)
        }
        int bytes = _config.SectorsPerPage * (_config.SectorSize + _config.TupleSize);
        var before = new Dictionary<int, byte[]>();
        foreach (Slot slot in slots)
        {
            byte[] raw = new byte[bytes];
            _images[d].ReadRaw(slot.Lba, raw);
            before[slot.Page] = raw;
        }
        // Cut short before it marked itself complete: the mark goes back to what it was.
        string fencePath = CachedDisk.FencePath(_images[d].Path);
        byte[] mark = new byte[8];
        using (var fence = File.OpenHandle(fencePath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
        {
            RandomAccess.Read(fence, mark, CachedDisk.CompletedSequenceOffset);
        }
        _disks[d].Cache.FlushAsync().GetAwaiter().GetResult();
        using (var fence = File.OpenHandle(fencePath, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
        {
            RandomAccess.Write(fence, mark, CachedDisk.CompletedSequenceOffset);
        }
        var lost = new List<int>();
        foreach (Slot slot in slots)
        {
            if (_rng.Next(2) == 0)
            {
                _images[d].WriteRaw(slot.Lba, before[slot.Page]); // this slot's data never reached the medium
                lost.Add(slot.Page);
            }
            else
            {
                DropDamage(slot.Damage); // written over
                if (slot.RottedLbas.Count > 0)
                {
                    Fault("media-bitrot").Masked += slot.RottedLbas.Count(l => !slot.RotDetected.Contains(l)); // written over
                    slot.RottedLbas.Clear();
                    slot.RotDetected.Clear();
                }
            }
        }
        ReopenDisk(d); // the flush never answered: its flusher learns of the loss from the next flush (another boot)
        Count("flushes cut short");
        Log($"disk {d} died in the middle of a flush: the data of pages {string.Join(",", lost)} never reached the medium, of {slots.Count - lost.Count} others it did");
        return true;
    }

    private void ReopenDisk(int d)
    {
        _disks[d].Cache.Dispose();
        _disks[d] = new DiskDevice(_config, new CachedDisk(_images[d], _config.SectorsPerPage));
        // A claim not yet flushed went with the cache: the check below only holds claims this disk activation saw.
        Array.Clear(_claims[d]);
        foreach (Slot slot in _slots.Where(s => s.Disk == d))
        {
            DropDamage(slot.CachedDamage); // never reached the medium
            slot.InCache = false; // what was cached is gone
        }
    }

    private bool PowerLoss()
    {
        foreach (Slot slot in _slots)
        {
            slot.TableGood = false; // the acknowledgement table lived in the page cache
            DropActivation(slot);
        }
        _flights.Clear();
        _ledger = new DurabilityLedger(++_incarnation);
        _builder = NewBuilder();
        _dirty.Clear();
        FsyncFailed("the power failed");
        for (int d = 0; d < _config.Disks; d++)
        {
            ReopenDisk(d);
        }
        Count("power losses");
        Log("power loss: every page, the flusher and every disk's cache gone");
        return true;
    }

    // ------------------------------------------------------------------ faults

    private FaultCounts Fault(string kind) => _result.Faults[kind];

    private void Detected(string kind, int count) => Fault(kind).Detected += count;

    private bool MemoryBitflip()
    {
        Slot slot = RandomSlot();
        if (slot.Machine is not { Poisoned: false } m || !slot.ExpectedKnown)
        {
            return false;
        }
        int bit = _rng.Next(VolumeConfig.PageSize * 8);
        int sector = bit / 8 / _config.SectorSize;
        if (slot.Taints.ContainsKey(sector))
        {
            return false; // one fault per sector at a time: two could cancel
        }
        m.Bitflip(bit);
        slot.FlipsInjected++;
        slot.Taints[sector] = new Taint { Window = !m.TagValid(sector) };
        Fault("memory-bitflip").Injected++;
        Log($"memory bit flip in page {slot.Page} sector {sector}{(m.TagValid(sector) ? "" : " (no cached tag: window)")}");
        return true;
    }

    private bool MediaBitrot()
    {
        Slot slot = RandomSlot();
        DiskDevice disk = _disks[slot.Disk];
        long flushed = disk.Cache.FlushedVersion(slot.Lba);
        if (flushed == 0 || slot.RottedLbas.Count > 0 || slot.InCache)
        {
            return false; // rot hits data at rest, once per page at a time, not under a newer cached write
        }
        long lba = slot.Lba + _rng.Next(_config.SectorsPerPage);
        int block = _config.SectorSize + _config.TupleSize;
        byte[] raw = new byte[block];
        _images[slot.Disk].ReadRaw(lba, raw);
        int bit = _rng.Next(_config.SectorSize * 8);
        raw[bit / 8] ^= (byte)(1 << (bit % 8));
        _images[slot.Disk].WriteRaw(lba, raw);
        slot.RottedLbas.Add(lba);
        Fault("media-bitrot").Injected++;
        Log($"media bit rot at disk {slot.Disk} LBA {lba} (page {slot.Page})");
        return true;
    }

    // ------------------------------------------------------------------ invariants

    private void CheckInvariants()
    {
        foreach (Slot slot in _slots)
        {
            long flushed = _disks[slot.Disk].Cache.FlushedVersion(slot.Lba);
            if (flushed < slot.Synced)
            {
                Violate(Invariant.SyncedWriteLost, $"page {slot.Page}: the medium holds {Describe(flushed)}, an fsync acknowledged {Describe(slot.Synced)}");
                return;
            }
            if (slot.Machine is { } m)
            {
                foreach (var (sector, taint) in slot.Taints)
                {
                    taint.Window |= !m.TagValid(sector); // a store (or a write without cached tags) dropped its tag
                }
                if (m.Poisoned && !m.PoisonedAtLoad)
                {
                    NotePoison(slot);
                }
            }
        }
    }

    /// <summary>
    /// The end of a schedule: no more faults or crashes; every lease expires, everything is written back and flushed,
    /// and an fsync must make every page durable. Then every page is loaded again from its disk (after a power loss:
    /// only the medium counts) and compared with what clients wrote.
    /// </summary>
    private void Drain()
    {
        _step = _o.Steps + 1;
        foreach (Flight f in _flights.ToList())
        {
            if (ReferenceEquals(f.Slot.Machine, f.Machine) && f.Machine.ExpireLease(f.Snapshot.WritebackId))
            {
                Register(f.Slot, f.Machine, DirtyEffect.Register);
            }
        }
        _flights.Clear();
        foreach (Slot slot in _slots.Where(s => s.Machine is { State: PageState.Dirty }))
        {
            _dirty.Add(slot.Page);
        }
        _fsync = null;
        _pendingPromises.Clear();
        StartFsync();
        for (int round = 0; round < 20 && _fsync is not null && _result.Violations.Count == 0; round++)
        {
            while (_dirty.Count > 0)
            {
                int before = _flights.Count;
                BeginWriteback();
                if (_flights.Count == before && _dirty.Count > 0)
                {
                    _dirty.Remove(_dirty.Min); // busy or not dirty: nothing to write
                }
            }
            foreach (Flight f in _flights.ToList())
            {
                f.Command ??= _builder.Build(f.Slot.Lba, [f.Snapshot]);
            }
            while (_flights.Any(f => !f.Sent))
            {
                Transfer();
            }
            while (_flights.Count > 0)
            {
                End();
            }
            for (int d = 0; d < _config.Disks; d++)
            {
                _ledger.RequestFlush(d);
            }
            FlushDisks();
            CheckFsync();
            CheckInvariants();
        }
        if (_fsync is { } left && _result.Violations.Count == 0)
        {
            if (left.Want.Keys.Any(p => _slots[p].Machine is { Poisoned: false }))
            {
                Violate(Invariant.DrainNotDurable, $"pages {string.Join(", ", left.Want.Keys)} not durable after a fault-free drain");
            }
        }
        // Power off: only the medium is left; every page loads again and must hold what clients wrote and fsync promised.
        if (_result.Violations.Count == 0)
        {
            PowerLoss();
            foreach (Slot slot in _slots)
            {
                Active(slot);
            }
            CheckInvariants();
        }
        foreach (var (kind, f) in _result.Faults)
        {
            if (_result.Violations.Count == 0 && f.Injected != f.Detected + f.Masked + f.SilentInWindow)
            {
                Violate(Invariant.FaultUnaccounted, $"{kind}: {f.Injected} injected, {f.Detected} detected, {f.Masked} masked, {f.SilentInWindow} silent in the window");
            }
        }
    }

    // ------------------------------------------------------------------ helpers

    /// <summary>How content differs from what was expected at a version: the sectors, and any acknowledged version it is.</summary>
    private string Difference(int page, long version, byte[] data)
    {
        int size = _config.SectorSize;
        var parts = new List<string>();
        if (_contents.TryGetValue((page, version), out byte[]? expected))
        {
            var sectors = Enumerable.Range(0, _config.SectorsPerPage).Where(s => !data.AsSpan(s * size, size).SequenceEqual(expected.AsSpan(s * size, size)));
            parts.Add($"sectors {string.Join(",", sectors)} differ");
        }
        else
        {
            parts.Add("no acknowledged write made that version");
        }
        foreach (var ((p, v), content) in _contents)
        {
            if (p == page && content.AsSpan().SequenceEqual(data))
            {
                parts.Add($"it is {Describe(v)}");
            }
        }
        return string.Join("; ", parts);
    }

    private byte[] RandomBytes(int n)
    {
        byte[] b = new byte[n];
        _rng.NextBytes(b);
        return b;
    }

    private static string Describe(long version) => version == 0 ? "v0" : $"e{PageVersion.EpochOf(version)}:{version - PageVersion.First(PageVersion.EpochOf(version))}";
}
