using System.Diagnostics;
using System.Numerics;
using OrleansDif.Protection;

namespace OrleansDif.Grains;

/// <summary>What a write or a store did.</summary>
public enum WriteOutcome
{
    /// <summary>Applied: <see cref="PageMachine.Version"/> is the new version; <see cref="DirtyEffect"/> says whom to tell.</summary>
    Applied,
    /// <summary>Not applied: the page is under writeback and its policy holds writers until it ends.</summary>
    UnderWriteback,
}

/// <summary>What the flusher must be told before a write that was just applied is acknowledged.</summary>
public enum DirtyEffect
{
    /// <summary>The flusher knows the page is dirty already (the registration under way covers this write too).</summary>
    Known,
    /// <summary>Clean → Dirty: register the page with the flusher.</summary>
    BecameDirty,
    /// <summary>
    /// Register again: the write landed under writeback (the snapshot does not hold it), or it replaced a poisoned
    /// page's content (the flusher dropped the page when it found it poisoned).
    /// </summary>
    Register,
}

/// <summary>
/// One page of the page cache as a plain state machine: content, guard tags cached at copy-in, the state
/// Clean / Dirty / Writeback, versions, mappings, and poisoning. No Orleans types, no awaits, no clock: every method
/// is one transition that runs to completion, checks its preconditions, and throws a typed
/// <see cref="StorageException"/> changing nothing when the input is bad. <see cref="PageGrain"/> is a shell around it:
/// it loads, awaits between transitions (held writers, the flusher, the disk), and runs the effects they return.
/// </summary>
public sealed class PageMachine
{
    public const int PageSize = VolumeConfig.PageSize;

    private readonly VolumeConfig _config;
    private readonly ProtectionScheme _scheme;
    private readonly long _lba;
    private byte[] _content = new byte[PageSize];
    private readonly ulong[] _tags;         // guard tags: CRC-16 or CRC-64, as the volume's format says
    private ulong _validTags;               // bit s set: _tags[s] is the CRC of sector s as it is now
    private long _count;                    // writes of this activation
    private bool _lostDuringWriteback;   // a disk lost its cache while this writeback ran: its end leaves the page dirty
    private bool _registeredSinceStart;     // a write under writeback told the flusher already
    private bool _periodOpen;               // a write was applied since the load or since the last writeback began
    private bool _periodUnrecorded;         // ... and the dirty log has not been asked to record that period yet
    private readonly Dictionary<long, Mapping> _mappings = [];
    private long _nextMapping = 1;

    private sealed class Mapping(bool writable)
    {
        public bool Writable { get; } = writable;
        public bool Revoked { get; set; }
    }

    public PageMachine(VolumeConfig config, int page, long lba)
    {
        _config = config;
        Page = page;
        _lba = lba;
        Policy = WritebackPolicies.For(config.Policy);
        _scheme = GrainHelpers.Scheme(config);
        _tags = new ulong[config.SectorsPerPage];
    }

    public int Page { get; }
    public IWritebackPolicy Policy { get; }
    public PageState State { get; private set; } = PageState.Clean;

    /// <summary>The version of the content: epoch:count (<see cref="PageVersion"/>).</summary>
    public long Version { get; private set; }

    /// <summary>The newest version a writeback of which ended successfully (in the disk's cache at least).</summary>
    public long DurableVersion { get; private set; }

    /// <summary>The version the disk held for the page when this activation loaded it.</summary>
    public long LoadedVersion { get; private set; }

    /// <summary>This activation's epoch (claimed on the disk at load).</summary>
    public long Epoch { get; private set; }

    /// <summary>The disk activation that took the last written-back version.</summary>
    public long WrittenBoot { get; private set; }

    /// <summary>The writeback under way (set exactly while <see cref="State"/> is Writeback).</summary>
    public Guid WritebackId { get; private set; }

    /// <summary>The version the writeback under way writes.</summary>
    public long WritebackVersion { get; private set; }

    /// <summary>The content is not to be trusted (memory corrupt, or unreadable on disk): never written back.</summary>
    public bool Poisoned { get; private set; }

    /// <summary>Poisoned because the stored copy failed a check: a clean page reads it again next time.</summary>
    public bool PoisonedAtLoad { get; private set; }

    public string PoisonReason { get; private set; } = "";
    public ProtectionFailure? PoisonFailure { get; private set; }

    /// <summary>Called when a check of the content against its cached tags poisons the page (sector index).</summary>
    public Action<int>? OnPoisoned { get; set; }

    public int ValidTagSectors => BitOperations.PopCount(_validTags);

    /// <summary>Whether sector <paramref name="sector"/> has a cached tag (a check can catch a change behind the page's back).</summary>
    public bool TagValid(int sector) => (_validTags & (1UL << sector)) != 0;
    public int WritableMappings => _mappings.Values.Count(m => m.Writable && !m.Revoked);
    public int RevokedMappings => _mappings.Values.Count(m => m.Revoked);

    /// <summary>A writer would be held now (stable policy, page under writeback).</summary>
    public bool HoldsWriters => State == PageState.Writeback && Policy.HoldsWriters;

    // ------------------------------------------------------------------ load

    /// <summary>
    /// Loaded from the disk: the stored data and its PI. The disk verified the PI, so the stored guards become the
    /// cached tags (escaped sectors get theirs computed).
    /// </summary>
    public void Load(long epoch, long held, byte[] data, ReadOnlySpan<byte> pi)
    {
        CheckLength(data.Length == PageSize && pi.Length == _tags.Length * _config.TupleSize, "loaded page");
        Debug.Assert(State == PageState.Clean);
        int size = _config.SectorSize;
        for (int s = 0; s < _tags.Length; s++)
        {
            _tags[s] = _scheme.IsEscapedAt(pi, s) ? _scheme.ComputeGuard(data.AsSpan(s * size, size)) : _scheme.GuardAt(pi, s);
        }
        _content = data;
        _validTags = AllSectors;
        Poisoned = PoisonedAtLoad = false;
        Loaded(epoch, held);
    }

    /// <summary>
    /// The stored page failed a check: never served as good data. The page comes up poisoned (reads fail), and a
    /// whole-page write, which needs nothing of the old content, makes it good again.
    /// </summary>
    public void LoadPoisoned(long epoch, long held, string reason, ProtectionFailure? failure)
    {
        Debug.Assert(State == PageState.Clean);
        _content = new byte[PageSize];
        Array.Clear(_tags);
        _validTags = 0;
        Poisoned = PoisonedAtLoad = true;
        PoisonReason = "its stored copy failed a check when it was read: " + reason;
        PoisonFailure = failure;
        Loaded(epoch, held);
    }

    /// <summary>
    /// A new activation takes what the disk returned (<see cref="DiskPageRead"/>): loaded when it passed the disk's
    /// checks and every sector carries the version tag of the version the disk holds (a sector with another tag is a
    /// lost or torn write), else poisoned. The failure that poisoned it, or null.
    /// </summary>
    public ProtectionFailure? LoadFrom(DiskPageRead stored, string what)
    {
        ProtectionFailure? failure = stored.Failure;
        string reason = stored.Error ?? "the stored page failed a check";
        if (failure is null && VersionMismatch(_config, _lba, stored.Pi, stored.HeldVersion, what) is (ProtectionFailure f, string why))
        {
            (failure, reason) = (f, why);
        }
        if (failure is not null)
        {
            LoadPoisoned(stored.Epoch, stored.HeldVersion, reason, failure);
            return failure;
        }
        Load(stored.Epoch, stored.HeldVersion, stored.Data, stored.Pi);
        return null;
    }

    /// <summary>
    /// With version tags, every sector of a page the disk holds at <paramref name="held"/> carries that version's tag;
    /// one that does not is a lost write (the first sector, or an escaped one) or a write torn at a sector boundary.
    /// The failure and its message, or null. A page never written through the page protocol (held 0) is not compared.
    /// </summary>
    public static (ProtectionFailure Failure, string Message)? VersionMismatch(VolumeConfig config, long lba, ReadOnlySpan<byte> pi, long held, string what)
    {
        if (!config.VersionTags || held == 0)
        {
            return null;
        }
        ProtectionScheme scheme = GrainHelpers.Scheme(config);
        ushort expected = VolumeConfig.VersionTag(held);
        for (int s = 0; s < config.SectorsPerPage; s++)
        {
            ushort appTag = scheme.AppTagAt(pi, s);
            bool escaped = scheme.IsEscapedAt(pi, s);
            if (!escaped && appTag == expected)
            {
                continue;
            }
            string kind = escaped || s == 0 ? "a lost write" : "a write torn at a sector boundary";
            return (new ProtectionFailure(lba + s, CheckKind.Version, expected, appTag),
                $"{what}: {kind}: LBA {lba + s} carries version tag 0x{appTag:X4}, the disk holds version {held} with tag 0x{expected:X4}");
        }
        return null;
    }

    private void Loaded(long epoch, long held)
    {
        Epoch = epoch;
        Version = DurableVersion = LoadedVersion = held;
        _count = 0;
    }

    private ulong AllSectors => _tags.Length == 64 ? ulong.MaxValue : (1UL << _tags.Length) - 1;

    // ------------------------------------------------------------------ writers

    /// <summary>
    /// write(2): copy in (computing the guard tags of the sectors touched, when the volume caches tags at copy-in),
    /// then a new version. Under a policy that holds writers, a page under writeback refuses the write (the caller
    /// waits for writeback to end and tries again, or gives up: EAGAIN). A poisoned page takes only whole-page writes.
    /// </summary>
    public WriteOutcome Write(int offset, ReadOnlySpan<byte> data, out DirtyEffect effect)
    {
        effect = DirtyEffect.Known;
        CheckRange(offset, data.Length);
        bool wholePage = offset == 0 && data.Length == PageSize;
        if (Poisoned && !wholePage)
        {
            throw PoisonedError("a partial write");
        }
        if (HoldsWriters)
        {
            return WriteOutcome.UnderWriteback;
        }
        int size = _config.SectorSize;
        if (!wholePage)
        {
            // A write that covers part of a sector merges with the rest of it: check that rest against its cached tag
            // first, or corruption there would be folded into a fresh, valid tag.
            CheckCachedSectors(offset, 1);
            CheckCachedSectors(offset + data.Length - 1, 1);
            if (Poisoned)
            {
                throw PoisonedError("a partial write");
            }
        }
        NextVersionCheck();
        bool wasPoisoned = Poisoned;
        Poisoned = PoisonedAtLoad = false; // a whole-page write replaces the corrupt content and every tag with it
        if (_config.TagsAtCopyIn)
        {
            CopyInTagged(offset, data);
        }
        else
        {
            data.CopyTo(_content.AsSpan(offset));
            _validTags &= ~SectorMask(offset, data.Length);
        }
        NextVersion();
        // A poisoned dirty page was dropped by the flusher: tell it again.
        effect = wasPoisoned && State == PageState.Dirty ? Register() : MarkDirty();
        return WriteOutcome.Applied;
    }

    /// <summary>mmap: a writable mapping made while the page is under stable writeback starts revoked.</summary>
    public long Map(bool writable)
    {
        long id = _nextMapping++;
        _mappings[id] = new Mapping(writable) { Revoked = writable && HoldsWriters };
        return id;
    }

    public void Unmap(long mapping)
    {
        GetMapping(mapping);
        _mappings.Remove(mapping);
    }

    /// <summary>
    /// A store through a mapping. A revoked mapping faults (page_mkwrite): held while the page is under writeback
    /// under a policy that holds writers, else granted again (<paramref name="faulted"/>). The cached tags are checked
    /// first. With <see cref="VolumeConfig.StoreTags"/> the store ends with every mapping of the page revoked, so it is
    /// a copy-in like a write's (the sectors it touched get fresh tags) and the next store faults; without it the
    /// mapping stays writable, and the store drops every tag: the page is untagged until its writeback.
    /// </summary>
    public WriteOutcome Store(long mapping, int offset, ReadOnlySpan<byte> data, out DirtyEffect effect, out bool faulted)
    {
        effect = DirtyEffect.Known;
        faulted = false;
        Mapping map = GetMapping(mapping);
        if (!map.Writable)
        {
            throw new StorageException(StorageError.ReadOnlyMapping, $"mapping {mapping} of page {Page} is read-only");
        }
        CheckRange(offset, data.Length);
        if (Poisoned)
        {
            throw PoisonedError("a store");
        }
        if (map.Revoked)
        {
            if (HoldsWriters)
            {
                return WriteOutcome.UnderWriteback;
            }
            map.Revoked = false;
            faulted = true;
        }
        if (_validTags != 0)
        {
            // The store drops every cached tag (it computes none): check them first, or a change behind the page's
            // back since they were computed would be written back under fresh, valid tags.
            CheckMemory();
            if (Poisoned)
            {
                throw PoisonedError("a store");
            }
        }
        NextVersionCheck();
        if (_config.StoreTags && _config.TagsAtCopyIn)
        {
            // Write-protected again (page_mkclean on every mapping): nothing changes the page behind the cache's back
            // until the next store faults, so the store is a copy-in like a write's: the sectors it touched get fresh
            // tags, the others keep the ones just checked.
            foreach (Mapping other in _mappings.Values)
            {
                other.Revoked |= other.Writable;
            }
            CopyInTagged(offset, data);
        }
        else
        {
            data.CopyTo(_content.AsSpan(offset));
            _validTags = 0;
        }
        NextVersion();
        effect = MarkDirty();
        return WriteOutcome.Applied;
    }

    /// <summary>Copies <paramref name="data"/> in at <paramref name="offset"/>, computing and caching the tags of the sectors it touches.</summary>
    private void CopyInTagged(int offset, ReadOnlySpan<byte> data)
    {
        Range touched = PageCopyIn.CopyIn(data, _content, offset, _config.SectorSize, _tags, _config.Guard == GuardKind.Crc64);
        for (int s = touched.Start.Value; s < touched.End.Value; s++)
        {
            _validTags |= 1UL << s;
        }
    }

    /// <summary>
    /// A read checks the sectors it returns against their cached tags (one CRC per sector read): memory corruption of
    /// a page, dirty or clean, is reported instead of returned as good data.
    /// </summary>
    public byte[] Read(int offset, int length)
    {
        if (length <= 0)
        {
            throw new StorageException(StorageError.EmptyBuffer, $"read of {length} bytes");
        }
        if (offset < 0 || offset > PageSize || length > PageSize - offset)
        {
            throw new StorageException(StorageError.OutOfRange, $"read of {length} bytes at offset {offset} is outside the {PageSize}-byte page");
        }
        CheckCachedSectors(offset, length);
        if (Poisoned)
        {
            throw PoisonedError("a read");
        }
        return _content.AsSpan(offset, length).ToArray();
    }

    /// <summary>Fault injection: one bit of memory flips behind the page cache's back (the cached tags stay).</summary>
    public void Bitflip(int bit)
    {
        if (bit < 0 || bit >= PageSize * 8)
        {
            throw new StorageException(StorageError.OutOfRange, $"bit {bit} is outside the {PageSize}-byte page");
        }
        _content[bit / 8] ^= (byte)(1 << (bit % 8));
    }

    /// <summary>
    /// The flusher says a version of this activation was lost from the disk's cache: the page is dirty again (it still
    /// holds the data). False for a version of an earlier activation, or a poisoned page: the flusher judges those.
    /// </summary>
    public bool Redirty(long version, out DirtyEffect effect)
    {
        effect = DirtyEffect.Known;
        if (PageVersion.EpochOf(version) != Epoch || Poisoned)
        {
            return false;
        }
        DurableVersion = Math.Min(DurableVersion, LoadedVersion);
        if (State == PageState.Clean)
        {
            effect = MarkDirty();
        }
        else if (State == PageState.Writeback)
        {
            // The writeback under way may have landed in the cache that was lost (its end can come after the flush
            // that found the loss): its end must neither claim durability nor leave the page clean.
            _lostDuringWriteback = true;
        }
        return true;
    }

    // ------------------------------------------------------------------ writeback

    /// <summary>
    /// Dirty → Writeback (<c>__folio_start_writeback</c>): the snapshot the flusher writes. Stable: the page's own
    /// buffer (it cannot change until writeback ends) and writable mappings revoked. Bounce: a private copy. Unstable:
    /// the live buffer, read again at transfer.
    /// </summary>
    public WritebackSnapshot StartWriteback(Guid id, long dirtyGeneration)
    {
        if (State == PageState.Writeback)
        {
            return NotStarted(BeginStatus.Busy);
        }
        if (State == PageState.Clean)
        {
            return NotStarted(BeginStatus.NotDirty);
        }
        if (Poisoned)
        {
            return NotStarted(BeginStatus.Poisoned);
        }
        Debug.Assert(id != Guid.Empty && WritebackId == Guid.Empty);
        State = PageState.Writeback;
        WritebackId = id;
        WritebackVersion = Version;
        _registeredSinceStart = false;
        _periodOpen = _periodUnrecorded = false; // the snapshot holds every write so far: the next one opens a period
        if (Policy.HoldsWriters)
        {
            foreach (Mapping m in _mappings.Values)
            {
                m.Revoked |= m.Writable;
            }
        }
        bool copy = Policy.CopiesAtStart;
        byte[] content = copy ? (byte[])_content.Clone() : _content;
        return new WritebackSnapshot(BeginStatus.Started, id, WritebackVersion, content, (ulong[])_tags.Clone(), _validTags, copy, dirtyGeneration);
    }

    private WritebackSnapshot NotStarted(BeginStatus why) => new(why, Guid.Empty, Version, [], [], 0, false);

    /// <summary>The live buffer, for a policy that reads the page again at transfer (only during that writeback).</summary>
    public byte[] ContentForTransfer(Guid id) => IsCurrent(id)
        ? _content
        : throw new StorageException(StorageError.OutOfRange, $"writeback {id} of page {Page} is not current");

    /// <summary>
    /// Writeback → Clean or Dirty (<c>folio_end_writeback</c>). Success: the written version is in the disk (its cache
    /// at least; fsync makes it durable); the page is clean unless it changed meanwhile. Failure: the page checks its
    /// memory (a disk that refused it may have been right) and stays dirty. A writeback that is not the current one
    /// (ended already, lease expired) changes nothing.
    /// </summary>
    public EndStatus EndWriteback(Guid id, bool success, long diskBoot, ReadOnlySpan<ulong> writtenTags = default)
    {
        if (!IsCurrent(id))
        {
            return EndStatus.StaleWriteback;
        }
        success &= !_lostDuringWriteback;
        if (success)
        {
            DurableVersion = Math.Max(DurableVersion, WritebackVersion);
            WrittenBoot = diskBoot;
            if (Version == WritebackVersion && writtenTags.Length == _tags.Length)
            {
                AdoptWrittenTags(writtenTags);
            }
        }
        else
        {
            CheckMemory();
        }
        bool clean = success && Version == WritebackVersion;
        LeaveWriteback(clean ? PageState.Clean : PageState.Dirty);
        return clean ? EndStatus.Ended : EndStatus.EndedDirty;
    }

    /// <summary>
    /// The guard tags the flusher wrote for this version, the page unchanged since writeback began: a sector without a
    /// cached tag (a store cleared it, or tags are not cached at copy-in) takes the one written, so a change behind
    /// the page's back from now on is caught again. A sector whose cached tag differs from the one written was changed
    /// in memory before the flusher read it: the page checks its memory (and is poisoned).
    /// </summary>
    private void AdoptWrittenTags(ReadOnlySpan<ulong> written)
    {
        bool differs = false;
        for (int s = 0; s < _tags.Length; s++)
        {
            if ((_validTags & (1UL << s)) == 0)
            {
                _tags[s] = written[s];
                _validTags |= 1UL << s;
                TagsAdopted++;
            }
            else
            {
                differs |= _tags[s] != written[s];
            }
        }
        if (differs)
        {
            CheckMemory();
        }
    }

    /// <summary>Sector tags taken from the flusher at the end of a writeback (see <see cref="EndWriteback"/>).</summary>
    public long TagsAdopted { get; private set; }

    /// <summary>
    /// The lease of writeback <paramref name="id"/> expired: Writeback → Dirty. Copy on expiry: under a policy that sends
    /// the page's own buffer the expired writeback may still be reading it, so the page never changes that buffer again
    /// and takes writes into a private copy. False when <paramref name="id"/> is not current (nothing to do).
    /// </summary>
    public bool ExpireLease(Guid id)
    {
        if (!IsCurrent(id))
        {
            return false;
        }
        if (Policy.SharesLiveBuffer)
        {
            _content = (byte[])_content.Clone();
        }
        LeaveWriteback(PageState.Dirty);
        return true;
    }

    /// <summary>
    /// Deactivation with the page not clean: the snapshot handed to the flusher to write (fenced by version). The page
    /// does not change state until <see cref="Evicted"/>.
    /// </summary>
    public WritebackSnapshot EvictionSnapshot(long dirtyGeneration)
    {
        Debug.Assert(State != PageState.Clean && !Poisoned);
        return new WritebackSnapshot(BeginStatus.Started, Guid.Empty, Version, _content, (ulong[])_tags.Clone(), _validTags, false, dirtyGeneration);
    }

    /// <summary>The flusher wrote and flushed the eviction snapshot: the page is clean (and going away).</summary>
    public void Evicted()
    {
        Debug.Assert(State != PageState.Clean);
        WritebackId = Guid.Empty;
        State = PageState.Clean;
        DurableVersion = Version;
    }

    private bool IsCurrent(Guid id) => State == PageState.Writeback && id == WritebackId && id != Guid.Empty;

    private void LeaveWriteback(PageState next)
    {
        Debug.Assert(State == PageState.Writeback && next != PageState.Writeback);
        WritebackId = Guid.Empty;
        _lostDuringWriteback = false;
        State = next;
    }

    /// <summary>
    /// Clean → Dirty. A write under writeback (bounce, unstable, an expired lease) is not in the snapshot: the flusher
    /// must know it is owed, once per writeback, before it is acknowledged, to judge a loss exactly.
    /// </summary>
    private DirtyEffect MarkDirty()
    {
        if (State == PageState.Writeback && !_registeredSinceStart)
        {
            _registeredSinceStart = true;
            return DirtyEffect.Register;
        }
        if (State == PageState.Clean)
        {
            State = PageState.Dirty;
            return DirtyEffect.BecameDirty;
        }
        return DirtyEffect.Known;
    }

    private DirtyEffect Register()
    {
        if (State == PageState.Writeback)
        {
            _registeredSinceStart = true;
        }
        return DirtyEffect.Register;
    }

    // ------------------------------------------------------------------ memory checks

    /// <summary>
    /// Does the content still match the guard tags cached at copy-in? A sector that does not was changed behind the
    /// page cache's back (memory corruption): the page is poisoned, never written back, and reported instead of
    /// retried for ever.
    /// </summary>
    public void CheckMemory()
    {
        int size = _config.SectorSize;
        for (int s = 0; s < _tags.Length; s++)
        {
            if ((_validTags & (1UL << s)) == 0)
            {
                continue;
            }
            ulong actual = _scheme.ComputeGuard(_content.AsSpan(s * size, size));
            if (actual != _tags[s])
            {
                if (!Poisoned)
                {
                    Poisoned = true;
                    PoisonReason = "its memory no longer matches the guard tags cached at copy-in";
                    PoisonFailure = new ProtectionFailure(_lba + s, CheckKind.Guard, _tags[s], actual);
                    OnPoisoned?.Invoke(s);
                }
                return;
            }
        }
    }

    private void CheckCachedSectors(int offset, int length)
    {
        int size = _config.SectorSize;
        for (int s = offset / size; s <= (offset + length - 1) / size; s++)
        {
            if ((_validTags & (1UL << s)) != 0 && _scheme.ComputeGuard(_content.AsSpan(s * size, size)) != _tags[s])
            {
                CheckMemory();
                return;
            }
        }
    }

    // ------------------------------------------------------------------ helpers

    private StorageException PoisonedError(string what) => new(StorageError.IntegrityError,
        $"{what} of {_config.Id} page {Page} refused: the page is poisoned ({PoisonReason}); only a whole-page write replaces it",
        PoisonFailure);

    private void NextVersionCheck()
    {
        if (_count >= PageVersion.MaxCount)
        {
            throw new StorageException(StorageError.OutOfRange,
                $"{_config.Id} page {Page}: {PageVersion.MaxCount} writes in one activation; deactivate the page to start a new epoch");
        }
    }

    /// <summary>The next version of this activation: its epoch, and one more write.</summary>
    private void NextVersion()
    {
        _count++;
        Version = PageVersion.First(Epoch) + _count;
        if (!_periodOpen)
        {
            _periodOpen = _periodUnrecorded = true;
            PeriodStart = Version;
        }
    }

    // ------------------------------------------------------------------ dirty periods

    /// <summary>
    /// The first version of the dirty period under way (0: none yet). A period opens with the first write after the
    /// load or after a writeback began, and holds every write until the next writeback begins. So a writeback whose
    /// snapshot holds a period's first version began after every write the period had (a write after that begin
    /// opens the next period): a disk holding at least the last period's first version holds every acknowledged
    /// write, and a disk holding less lost the period's acknowledged writes. With that first version durable before
    /// any write of the period is acknowledged (<see cref="DirtyLog"/>), a loss is judged exactly after a power loss.
    /// </summary>
    public long PeriodStart { get; private set; }

    /// <summary>
    /// Once per period, for the write (or store) just applied: true when it opened a period that is not recorded yet,
    /// with its first version; the shell records it and holds every acknowledgement of the period until it is durable.
    /// </summary>
    public bool TakeOpenedPeriod(out long start)
    {
        start = PeriodStart;
        bool due = _periodUnrecorded;
        _periodUnrecorded = false;
        return due;
    }

    /// <summary>The record of period <paramref name="start"/> failed: the next write of that period asks again.</summary>
    public void PeriodRecordFailed(long start)
    {
        _periodUnrecorded |= _periodOpen && start == PeriodStart;
    }

    private ulong SectorMask(int offset, int length)
    {
        int size = _config.SectorSize;
        ulong mask = 0;
        for (int s = offset / size; s <= (offset + length - 1) / size; s++)
        {
            mask |= 1UL << s;
        }
        return mask;
    }

    private Mapping GetMapping(long mapping) => _mappings.TryGetValue(mapping, out Mapping? map)
        ? map
        : throw new StorageException(StorageError.UnknownMapping, $"page {Page} has no mapping {mapping}");

    private static void CheckRange(int offset, int length)
    {
        if (length == 0)
        {
            throw new StorageException(StorageError.EmptyBuffer, "write of 0 bytes");
        }
        if (length > PageSize)
        {
            throw new StorageException(StorageError.BufferTooLarge, $"write of {length} bytes is larger than a {PageSize}-byte page");
        }
        if (offset < 0 || offset > PageSize - length)
        {
            throw new StorageException(StorageError.OutOfRange, $"write of {length} bytes at offset {offset} is outside the {PageSize}-byte page");
        }
    }

    private static void CheckLength(bool ok, string what)
    {
        if (!ok)
        {
            throw new StorageException(StorageError.OutOfRange, $"{what} has the wrong length");
        }
    }
}
