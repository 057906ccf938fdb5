using OrleansDif.Grains;
using OrleansDif.Protection;

namespace OrleansDif.Grains.Tests.Page;

/// <summary>The page's state machine, transition by transition (no cluster).</summary>
public sealed class PageMachineTests
{
    private const long Epoch = 9;
    private const int Size = PageMachine.PageSize;
    private static readonly Guid Wb1 = Guid.NewGuid(), Wb2 = Guid.NewGuid();

    private static long V(long count) => PageVersion.First(Epoch) + count;

    private static PageMachine Loaded(WritebackPolicy policy, bool tagsAtCopyIn = true, long held = 0, bool storeTags = true)
    {
        var config = new VolumeConfig { Id = "v", Policy = policy, TagsAtCopyIn = tagsAtCopyIn, StoreTags = storeTags };
        var machine = new PageMachine(config, page: 3, lba: 24);
        var format = new SectorFormat(config.SectorSize);
        byte[] data = new byte[Size];
        byte[] pi = new byte[config.SectorsPerPage * PiTuple.Size];
        var scheme = new ProtectionScheme(format, PiType.Type1);
        for (int s = 0; s < config.SectorsPerPage; s++)
        {
            var tuple = new PiTuple(Crc16T10Dif.Compute(data.AsSpan(s * config.SectorSize, config.SectorSize)), 0, (uint)(24 + s));
            tuple.Write(pi.AsSpan(s * PiTuple.Size, PiTuple.Size));
        }
        machine.Load(Epoch, held, data, pi);
        Assert.False(scheme.IsEscaped(PiTuple.Read(pi)));
        return machine;
    }

    private static byte[] Bytes(int length, byte value) => Enumerable.Repeat(value, length).ToArray();

    private static DirtyEffect Write(PageMachine m, int offset, byte[] data)
    {
        Assert.Equal(WriteOutcome.Applied, m.Write(offset, data, out DirtyEffect effect));
        return effect;
    }

    [Fact]
    public void ALoadedPageIsCleanAtTheVersionItsDiskHeldWithEveryTagValid()
    {
        PageMachine m = Loaded(WritebackPolicy.Stable, held: 1234);
        Assert.Equal(PageState.Clean, m.State);
        Assert.Equal(1234, m.Version);
        Assert.Equal(1234, m.DurableVersion);
        Assert.Equal(1234, m.LoadedVersion);
        Assert.Equal(Epoch, m.Epoch);
        Assert.Equal(8, m.ValidTagSectors);
        Assert.Equal(new byte[16], m.Read(0, 16));
    }

    [Fact]
    public void TheFirstWriteMakesTheCleanPageDirtyAndLaterOnesAreAlreadyKnown()
    {
        PageMachine m = Loaded(WritebackPolicy.Stable);
        Assert.Equal(DirtyEffect.BecameDirty, Write(m, 100, Bytes(10, 7)));
        Assert.Equal(PageState.Dirty, m.State);
        Assert.Equal(V(1), m.Version);
        Assert.Equal(DirtyEffect.Known, Write(m, 200, Bytes(10, 8)));
        Assert.Equal(V(2), m.Version);
        Assert.Equal(Bytes(10, 7), m.Read(100, 10));
    }

    [Fact]
    public void CopyInKeepsTheTouchedSectorsTagsValidAndWithoutCopyInTagsGoStale()
    {
        PageMachine withTags = Loaded(WritebackPolicy.Stable);
        Write(withTags, 500, Bytes(30, 1)); // sectors 0 and 1
        Assert.Equal(8, withTags.ValidTagSectors);

        PageMachine without = Loaded(WritebackPolicy.Stable, tagsAtCopyIn: false);
        Write(without, 500, Bytes(30, 1));
        Assert.Equal(6, without.ValidTagSectors);
    }

    [Fact]
    public void StartingWritebackOfACleanPageOrOneUnderWritebackDoesNotStart()
    {
        PageMachine m = Loaded(WritebackPolicy.Stable);
        Assert.Equal(BeginStatus.NotDirty, m.StartWriteback(Wb1, 1).Status);
        Write(m, 0, Bytes(8, 1));
        Assert.Equal(BeginStatus.Started, m.StartWriteback(Wb1, 1).Status);
        Assert.Equal(BeginStatus.Busy, m.StartWriteback(Wb2, 1).Status);
        Assert.Equal(Wb1, m.WritebackId);
    }

    [Fact]
    public void StableWritebackSendsThePagesOwnBufferAndHoldsWritersUntilItEnds()
    {
        PageMachine m = Loaded(WritebackPolicy.Stable);
        Write(m, 0, Bytes(8, 1));
        WritebackSnapshot s = m.StartWriteback(Wb1, 1);
        Assert.False(s.Copied);
        Assert.Equal(V(1), s.Version);
        Assert.True(m.HoldsWriters);
        Assert.Equal(WriteOutcome.UnderWriteback, m.Write(0, Bytes(8, 2), out _));
        Assert.Equal(V(1), m.Version); // refused: nothing changed
        Assert.Equal(1, s.Content[0]);

        Assert.Equal(EndStatus.Ended, m.EndWriteback(Wb1, success: true, diskBoot: 5));
        Assert.Equal(PageState.Clean, m.State);
        Assert.Equal(V(1), m.DurableVersion);
        Assert.Equal(5, m.WrittenBoot);
        Assert.False(m.HoldsWriters);
        Assert.Equal(DirtyEffect.BecameDirty, Write(m, 0, Bytes(8, 2)));
    }

    [Fact]
    public void TheFirstWriteAfterLoadOpensADirtyPeriodAndTheOthersBeforeAWritebackBeginsShareIt()
    {
        PageMachine m = Loaded(WritebackPolicy.Stable, held: V(0));
        Assert.Equal(0, m.PeriodStart);
        Assert.False(m.TakeOpenedPeriod(out _));
        Write(m, 0, Bytes(8, 1));
        Assert.True(m.TakeOpenedPeriod(out long start));
        Assert.Equal(V(1), start);
        Assert.False(m.TakeOpenedPeriod(out _)); // asked once per period
        Write(m, 0, Bytes(8, 2));
        Assert.False(m.TakeOpenedPeriod(out _));
        Assert.Equal(V(1), m.PeriodStart);

        // The writeback's snapshot holds both: the next write, after it ends, opens a new period.
        m.StartWriteback(Wb1, 1);
        Assert.Equal(EndStatus.Ended, m.EndWriteback(Wb1, true, 1));
        long mapping = m.Map(writable: true);
        Assert.Equal(WriteOutcome.Applied, m.Store(mapping, 0, Bytes(8, 3), out _, out _)); // a store opens one as a write does
        Assert.True(m.TakeOpenedPeriod(out start));
        Assert.Equal(V(3), start);
    }

    [Theory]
    [InlineData(WritebackPolicy.Bounce)]
    [InlineData(WritebackPolicy.Unstable)]
    public void AWriteUnderWritebackOpensAPeriodTheSnapshotDoesNotHold(WritebackPolicy policy)
    {
        PageMachine m = Loaded(policy);
        Write(m, 0, Bytes(8, 1));
        m.TakeOpenedPeriod(out _);
        m.StartWriteback(Wb1, 1);
        Write(m, 0, Bytes(8, 2));
        Assert.True(m.TakeOpenedPeriod(out long start));
        Assert.Equal(V(2), start);
        Assert.Equal(EndStatus.EndedDirty, m.EndWriteback(Wb1, true, 1));
        Write(m, 0, Bytes(8, 3)); // still the period the write under writeback opened
        Assert.False(m.TakeOpenedPeriod(out _));
    }

    [Fact]
    public void AnExpiredWritebackClosedThePeriodItBeganIn()
    {
        // The expired command may still land: a write after its begin must not count as held by it.
        PageMachine m = Loaded(WritebackPolicy.Stable);
        Write(m, 0, Bytes(8, 1));
        m.TakeOpenedPeriod(out _);
        m.StartWriteback(Wb1, 1);
        Assert.True(m.ExpireLease(Wb1));
        Write(m, 0, Bytes(8, 2));
        Assert.True(m.TakeOpenedPeriod(out long start));
        Assert.Equal(V(2), start);
    }

    [Fact]
    public void AFailedPeriodRecordIsAskedForAgainByTheNextWriteOfThatPeriodOnly()
    {
        PageMachine m = Loaded(WritebackPolicy.Stable);
        Write(m, 0, Bytes(8, 1));
        m.TakeOpenedPeriod(out long first);
        m.PeriodRecordFailed(first);
        Write(m, 0, Bytes(8, 2));
        Assert.True(m.TakeOpenedPeriod(out long again));
        Assert.Equal(first, again); // the period still began with the unacknowledged first write

        m.StartWriteback(Wb1, 1);
        m.PeriodRecordFailed(first); // late: that period is closed, its writes are in the snapshot
        Assert.Equal(EndStatus.Ended, m.EndWriteback(Wb1, true, 1));
        Assert.False(m.TakeOpenedPeriod(out _));
    }

    [Fact]
    public void BounceWritebackSendsACopyAndAWriteUnderItRegistersOncePerWriteback()
    {
        PageMachine m = Loaded(WritebackPolicy.Bounce);
        Write(m, 0, Bytes(8, 1));
        WritebackSnapshot s = m.StartWriteback(Wb1, 1);
        Assert.True(s.Copied);
        Assert.False(m.HoldsWriters);
        Assert.Equal(DirtyEffect.Register, Write(m, 0, Bytes(8, 2)));
        Assert.Equal(DirtyEffect.Known, Write(m, 0, Bytes(8, 3)));
        Assert.Equal(1, s.Content[0]); // the copy did not change

        // Changed under writeback: the end leaves it dirty, and the next writeback registers again.
        Assert.Equal(EndStatus.EndedDirty, m.EndWriteback(Wb1, true, 1));
        Assert.Equal(PageState.Dirty, m.State);
        Assert.Equal(V(1), m.DurableVersion);
        m.StartWriteback(Wb2, 2);
        Assert.Equal(DirtyEffect.Register, Write(m, 0, Bytes(8, 4)));
    }

    [Fact]
    public void UnstableWritebackSendsTheLiveBufferThatWritersGoOnChanging()
    {
        PageMachine m = Loaded(WritebackPolicy.Unstable);
        Write(m, 0, Bytes(8, 1));
        WritebackSnapshot s = m.StartWriteback(Wb1, 1);
        Assert.False(s.Copied);
        Write(m, 0, Bytes(8, 2));
        Assert.Equal(2, m.ContentForTransfer(Wb1)[0]);
        Assert.Equal(2, s.Content[0]); // the very buffer: the 2010 bug, by design
        Assert.Throws<StorageException>(() => m.ContentForTransfer(Wb2));
    }

    [Fact]
    public void AStaleWritebackEndChangesNothing()
    {
        PageMachine m = Loaded(WritebackPolicy.Stable);
        Write(m, 0, Bytes(8, 1));
        m.StartWriteback(Wb1, 1);
        Assert.Equal(EndStatus.StaleWriteback, m.EndWriteback(Wb2, true, 1));
        Assert.Equal(EndStatus.StaleWriteback, m.EndWriteback(Guid.Empty, true, 1));
        Assert.Equal(PageState.Writeback, m.State);
        Assert.Equal(0, m.DurableVersion);
        Assert.Equal(EndStatus.Ended, m.EndWriteback(Wb1, true, 1));
        Assert.Equal(EndStatus.StaleWriteback, m.EndWriteback(Wb1, true, 1)); // ended once only
    }

    [Fact]
    public void AFailedWritebackLeavesThePageDirtyWithItsDurableVersionUnchanged()
    {
        PageMachine m = Loaded(WritebackPolicy.Stable);
        Write(m, 0, Bytes(8, 1));
        m.StartWriteback(Wb1, 1);
        Assert.Equal(EndStatus.EndedDirty, m.EndWriteback(Wb1, success: false, 1));
        Assert.Equal(PageState.Dirty, m.State);
        Assert.Equal(0, m.DurableVersion);
        Assert.False(m.Poisoned); // its memory still matches its tags
    }

    [Theory]
    [InlineData(WritebackPolicy.Stable, true)]
    [InlineData(WritebackPolicy.Unstable, true)]
    [InlineData(WritebackPolicy.Bounce, false)]
    public void LeaseExpiryMakesThePageDirtyAndCopiesTheBufferTheWritebackMayStillRead(WritebackPolicy policy, bool copies)
    {
        PageMachine m = Loaded(policy);
        Write(m, 0, Bytes(8, 1));
        WritebackSnapshot s = m.StartWriteback(Wb1, 1);
        Assert.False(m.ExpireLease(Wb2)); // not current
        Assert.True(m.ExpireLease(Wb1));
        Assert.Equal(PageState.Dirty, m.State);
        Assert.Equal(Guid.Empty, m.WritebackId);
        Assert.False(m.HoldsWriters);
        Write(m, 0, Bytes(8, 2));
        // Whatever the expired writeback still sends is what it snapshotted: never the new write.
        Assert.Equal(1, s.Content[0]);
        Assert.Equal(copies, !s.Copied);
        Assert.Equal(EndStatus.StaleWriteback, m.EndWriteback(Wb1, true, 1));
        Assert.Equal(0, m.DurableVersion);
    }

    [Fact]
    public void AWritableMappingIsRevokedByStableWritebackAndItsStoreFaultsAfterwards()
    {
        PageMachine m = Loaded(WritebackPolicy.Stable, storeTags: false); // as Linux: writable until writeback
        long map = m.Map(writable: true);
        long ro = m.Map(writable: false);
        Assert.Equal(WriteOutcome.Applied, m.Store(map, 0, Bytes(4, 1), out DirtyEffect effect, out bool faulted));
        Assert.Equal(DirtyEffect.BecameDirty, effect);
        Assert.False(faulted);
        Assert.Equal(0, m.ValidTagSectors); // a store computes no CRC

        m.StartWriteback(Wb1, 1);
        Assert.Equal(1, m.RevokedMappings);
        Assert.Equal(WriteOutcome.UnderWriteback, m.Store(map, 0, Bytes(4, 2), out _, out _));
        long late = m.Map(writable: true);
        Assert.Equal(2, m.RevokedMappings); // a mapping made under stable writeback starts revoked
        m.EndWriteback(Wb1, true, 1);

        Assert.Equal(WriteOutcome.Applied, m.Store(map, 0, Bytes(4, 2), out _, out faulted));
        Assert.True(faulted);
        Assert.Equal(1, m.RevokedMappings);
        Assert.Equal(StorageError.ReadOnlyMapping, Assert.Throws<StorageException>(() => m.Store(ro, 0, Bytes(4, 2), out _, out _)).Error);
        m.Unmap(late);
        Assert.Equal(StorageError.UnknownMapping, Assert.Throws<StorageException>(() => m.Unmap(late)).Error);
    }

    [Fact]
    public void WithStoreTagsAStoreLeavesThePageTaggedAndWriteProtectedSoTheNextStoreFaults()
    {
        PageMachine m = Loaded(WritebackPolicy.Bounce);
        long map = m.Map(writable: true);
        long other = m.Map(writable: true);
        long ro = m.Map(writable: false);
        Assert.Equal(WriteOutcome.Applied, m.Store(map, 100, Bytes(700, 1), out _, out bool faulted));
        Assert.False(faulted);
        Assert.Equal(8, m.ValidTagSectors);  // every sector tagged over the stored content
        Assert.Equal(2, m.RevokedMappings);  // both writable mappings write-protected again, the read-only one untouched
        Assert.Equal(WriteOutcome.Applied, m.Store(other, 0, Bytes(4, 2), out _, out faulted));
        Assert.True(faulted);                // page_mkwrite: the tags are checked before the store drops them
        Assert.Equal(8, m.ValidTagSectors);
        Assert.Equal(2, m.Read(0, 1)[0]);
        Assert.Equal(1, m.Read(100 + 699, 1)[0]);
        _ = ro;

        // Memory corruption right after a store is in a tagged sector: the next read reports it.
        m.Bitflip(5 * 512 * 8 + 1);
        Assert.Equal(StorageError.IntegrityError, Assert.Throws<StorageException>(() => m.Read(5 * 512, 4)).Error);
        Assert.True(m.Poisoned);
    }

    [Fact]
    public void WithStoreTagsAFlipAfterAStoreIsCaughtByTheNextStoresFault()
    {
        PageMachine m = Loaded(WritebackPolicy.Stable);
        long map = m.Map(writable: true);
        m.Store(map, 0, Bytes(16, 7), out _, out _);
        m.Bitflip(2 * 512 * 8 + 3);
        var e = Assert.Throws<StorageException>(() => m.Store(map, 0, Bytes(16, 8), out _, out _));
        Assert.Equal(StorageError.IntegrityError, e.Error);
        Assert.Equal(2 + 24, e.Failure!.Lba);
    }

    [Fact]
    public void WithoutATagCacheAStoreComputesNoTagsWhateverStoreTagsSays()
    {
        PageMachine m = Loaded(WritebackPolicy.Stable, tagsAtCopyIn: false);
        long map = m.Map(writable: true);
        m.Store(map, 0, Bytes(16, 7), out _, out _);
        Assert.Equal(0, m.ValidTagSectors);
        Assert.Equal(0, m.RevokedMappings);
    }

    [Fact]
    public void BounceNeverRevokesMappings()
    {
        PageMachine m = Loaded(WritebackPolicy.Bounce, storeTags: false);
        long map = m.Map(writable: true);
        m.Store(map, 0, Bytes(4, 1), out _, out _);
        m.StartWriteback(Wb1, 1);
        Assert.Equal(0, m.RevokedMappings);
        Assert.Equal(WriteOutcome.Applied, m.Store(map, 0, Bytes(4, 2), out DirtyEffect effect, out bool faulted));
        Assert.Equal(DirtyEffect.Register, effect);
        Assert.False(faulted);
    }

    [Fact]
    public void AReadOfAFlippedSectorPoisonsThePageAndOnlyAWholePageWriteHealsIt()
    {
        PageMachine m = Loaded(WritebackPolicy.Stable);
        int poisoned = -1;
        m.OnPoisoned = s => poisoned = s;
        Write(m, 0, Bytes(8, 1));
        m.Bitflip(8 * 1000); // byte 1000: sector 1
        Assert.Equal(new byte[10], m.Read(2000, 10)); // other sectors still read
        var e = Assert.Throws<StorageException>(() => m.Read(1000, 1));
        Assert.Equal(StorageError.IntegrityError, e.Error);
        Assert.Equal(CheckKind.Guard, e.Failure!.Check);
        Assert.Equal(24 + 1, e.Failure.Lba);
        Assert.Equal(1, poisoned);
        Assert.True(m.Poisoned);

        Assert.Equal(BeginStatus.Poisoned, m.StartWriteback(Wb1, 1).Status);
        Assert.Throws<StorageException>(() => m.Write(0, Bytes(8, 2), out _));
        long before = m.Version;
        Assert.Equal(before, m.Version);
        // The dirty page was dropped by the flusher when it found it poisoned: the healing write registers again.
        Assert.Equal(DirtyEffect.Register, Write(m, 0, Bytes(Size, 3)));
        Assert.False(m.Poisoned);
        Assert.Equal(3, m.Read(1000, 1)[0]);
    }

    [Fact]
    public void APartialWriteChecksTheSectorItMergesWith()
    {
        PageMachine m = Loaded(WritebackPolicy.Stable);
        m.Bitflip(8 * 600 + 3); // sector 1
        Assert.Throws<StorageException>(() => m.Write(520, Bytes(4, 1), out _));
        Assert.True(m.Poisoned);
        Assert.Equal(0, m.Version); // nothing applied
    }

    [Fact]
    public void AFailedWritebackOfCorruptMemoryPoisonsThePage()
    {
        PageMachine m = Loaded(WritebackPolicy.Stable);
        Write(m, 0, Bytes(8, 1));
        m.StartWriteback(Wb1, 1);
        m.Bitflip(5);
        Assert.Equal(EndStatus.EndedDirty, m.EndWriteback(Wb1, success: false, 1));
        Assert.True(m.Poisoned);
        Assert.Equal(BeginStatus.Poisoned, m.StartWriteback(Wb2, 1).Status);
    }

    [Fact]
    public void APoisonedLoadReadsNothingAndAWholePageWriteReplacesIt()
    {
        var m = new PageMachine(new VolumeConfig { Id = "v" }, 3, 24);
        m.LoadPoisoned(Epoch, held: 77, "guard check failed", new ProtectionFailure(24, CheckKind.Guard, 1, 2));
        Assert.True(m.Poisoned);
        Assert.True(m.PoisonedAtLoad);
        Assert.Equal(77, m.LoadedVersion);
        Assert.Throws<StorageException>(() => m.Read(0, 1));
        Assert.Equal(DirtyEffect.BecameDirty, Write(m, 0, Bytes(Size, 4)));
        Assert.False(m.PoisonedAtLoad);
        Assert.Equal(4, m.Read(0, 1)[0]);
    }

    [Fact]
    public void RedirtyTakesOnlyThisActivationsVersions()
    {
        PageMachine m = Loaded(WritebackPolicy.Stable, held: PageVersion.First(Epoch - 1) + 4);
        Write(m, 0, Bytes(8, 1));
        m.StartWriteback(Wb1, 1);
        m.EndWriteback(Wb1, true, 1);
        Assert.Equal(V(1), m.DurableVersion);
        Assert.False(m.Redirty(PageVersion.First(Epoch - 1) + 4, out _)); // an earlier activation's: the flusher judges
        Assert.Equal(PageState.Clean, m.State);
        // The disk lost its cache: the page still holds the data and is dirty again, durable only as far as it loaded.
        Assert.True(m.Redirty(V(1), out DirtyEffect effect));
        Assert.Equal(DirtyEffect.BecameDirty, effect);
        Assert.Equal(PageState.Dirty, m.State);
        Assert.Equal(m.LoadedVersion, m.DurableVersion);
    }

    [Fact]
    public void ARedirtyThatComesBeforeTheEndOfWritebackLeavesThePageDirty()
    {
        PageMachine m = Loaded(WritebackPolicy.Stable);
        Write(m, 0, Bytes(8, 1));
        m.StartWriteback(Wb1, 1);
        // The flusher flushed the disk before this writeback ended and found its cache lost.
        Assert.True(m.Redirty(V(1), out DirtyEffect effect));
        Assert.Equal(DirtyEffect.Known, effect);
        Assert.Equal(PageState.Writeback, m.State);
        Assert.Equal(EndStatus.EndedDirty, m.EndWriteback(Wb1, true, 1)); // acknowledged by the disk, lost since
        Assert.Equal(PageState.Dirty, m.State);
        Assert.Equal(m.LoadedVersion, m.DurableVersion);
        // The next writeback is judged on its own.
        m.StartWriteback(Wb2, 2);
        Assert.Equal(EndStatus.Ended, m.EndWriteback(Wb2, true, 2));
        Assert.Equal(V(1), m.DurableVersion);
    }

    [Fact]
    public void EvictionHandsOverTheLiveContentAndLeavesThePageClean()
    {
        PageMachine m = Loaded(WritebackPolicy.Stable);
        Write(m, 0, Bytes(8, 1));
        m.StartWriteback(Wb1, 1);
        WritebackSnapshot s = m.EvictionSnapshot(dirtyGeneration: 4);
        Assert.Equal(V(1), s.Version);
        Assert.Equal(4, s.DirtyGeneration);
        m.Evicted();
        Assert.Equal(PageState.Clean, m.State);
        Assert.Equal(EndStatus.StaleWriteback, m.EndWriteback(Wb1, true, 1)); // the writeback under way ends elsewhere
    }

    [Theory]
    [InlineData(-1, 8, StorageError.OutOfRange)]
    [InlineData(4090, 8, StorageError.OutOfRange)]
    [InlineData(0, 0, StorageError.EmptyBuffer)]
    [InlineData(0, Size + 1, StorageError.BufferTooLarge)]
    public void BadWritesGetATypedErrorAndChangeNothing(int offset, int length, StorageError error)
    {
        PageMachine m = Loaded(WritebackPolicy.Stable);
        var e = Assert.Throws<StorageException>(() => m.Write(offset, new byte[length], out _));
        Assert.Equal(error, e.Error);
        Assert.Equal(PageState.Clean, m.State);
        Assert.Equal(0, m.Version);
        Assert.Equal(StorageError.OutOfRange, Assert.Throws<StorageException>(() => m.Read(4000, 100)).Error);
        Assert.Equal(StorageError.EmptyBuffer, Assert.Throws<StorageException>(() => m.Read(0, 0)).Error);
        Assert.Equal(StorageError.OutOfRange, Assert.Throws<StorageException>(() => m.Bitflip(Size * 8)).Error);
    }

    [Fact]
    public void AStoreChecksTheTagsItDropsFirst()
    {
        PageMachine m = Loaded(WritebackPolicy.Stable);
        long map = m.Map(writable: true);
        m.Bitflip(3 * 512 * 8 + 5); // sector 3 changes behind the page's back; its tag is still cached
        var e = Assert.Throws<StorageException>(() => m.Store(map, 4000, [1, 2, 3], out _, out _));
        Assert.Equal(StorageError.IntegrityError, e.Error);
        Assert.True(m.Poisoned);
        Assert.Equal(3 + 24, e.Failure!.Lba);
    }

    [Fact]
    public void TheTagsWrittenBackAreCachedWhereAStoreClearedThem()
    {
        PageMachine m = Loaded(WritebackPolicy.Stable, storeTags: false);
        long map = m.Map(writable: true);
        Assert.Equal(WriteOutcome.Applied, m.Store(map, 0, Bytes(600, 9), out _, out _));
        Assert.Equal(0, m.ValidTagSectors);
        WritebackSnapshot snap = m.StartWriteback(Wb1, 1);
        ulong[] written = new ulong[8];
        for (int s = 0; s < 8; s++)
        {
            written[s] = Crc16T10Dif.Compute(snap.Content.AsSpan(s * 512, 512));
        }
        Assert.Equal(EndStatus.Ended, m.EndWriteback(Wb1, true, 1, written));
        Assert.Equal(8, m.ValidTagSectors);
        Assert.Equal(8, m.TagsAdopted);
        // A flip from now on is caught by the next read instead of being written back under a fresh tag.
        m.Bitflip(1 * 512 * 8);
        var e = Assert.Throws<StorageException>(() => m.Read(512, 10));
        Assert.Equal(StorageError.IntegrityError, e.Error);
    }

    [Fact]
    public void WrittenTagsAreNotTakenWhenThePageChangedDuringWriteback()
    {
        PageMachine m = Loaded(WritebackPolicy.Bounce, tagsAtCopyIn: false);
        Write(m, 0, Bytes(512, 4));
        Assert.Equal(7, m.ValidTagSectors); // sector 0's tag dropped (not computed at copy-in)
        m.StartWriteback(Wb1, 1);
        Write(m, 0, Bytes(512, 5));          // bounce: writers go on
        Assert.Equal(EndStatus.EndedDirty, m.EndWriteback(Wb1, true, 1, new ulong[8]));
        Assert.Equal(7, m.ValidTagSectors);
        Assert.Equal(0, m.TagsAdopted);
    }

    [Fact]
    public void AWrittenTagThatDiffersFromACachedOneMeansTheMemoryChanged()
    {
        PageMachine m = Loaded(WritebackPolicy.Unstable);
        Write(m, 0, Bytes(100, 1));
        WritebackSnapshot snap = m.StartWriteback(Wb1, 1);
        m.Bitflip(2 * 512 * 8 + 1);           // unstable computes every tag from the page as it is now
        ulong[] written = new ulong[8];
        for (int s = 0; s < 8; s++)
        {
            written[s] = Crc16T10Dif.Compute(snap.Content.AsSpan(s * 512, 512));
        }
        m.EndWriteback(Wb1, true, 1, written);
        Assert.True(m.Poisoned);
    }
}
