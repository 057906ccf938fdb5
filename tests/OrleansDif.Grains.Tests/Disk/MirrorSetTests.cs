namespace OrleansDif.Grains.Tests;

/// <summary>The mirror set's record and its comparison, transition by transition (no cluster).</summary>
public class MirrorSetTests
{
    private static SlotRead Slot(long held, byte fill = 1, CheckKind? failed = null) =>
        new([fill, fill], [0, 0], held, failed is CheckKind check ? new ProtectionFailure(0, check, 0, 0) : null);

    [Fact]
    public void ANewRecordHasNothingOutOfSync()
    {
        var set = new MirrorSet(3, 8);
        Assert.Equal(3, set.Copies);
        Assert.Equal(0, set.OutOfSyncCount);
        Assert.Empty(set.ToResync(1, 100));
    }

    [Fact]
    public void APrimaryThatStartsComparesEverySlotOfEveryCopy()
    {
        var set = new MirrorSet(3, 8);
        set.AllOutOfSync();
        Assert.Equal(16, set.OutOfSyncCount);
        Assert.Equal(8, set.ToResync(2, 100).Count);
        Assert.Equal(3, set.ToResync(1, 3).Count);
    }

    [Fact]
    public void AWriteIsUnflushedUntilAFlushOfTheSameActivationReachesIt()
    {
        var set = new MirrorSet(2, 8);
        set.Wrote(1, 2, 2, boot: 7, landed: 5);
        Assert.Equal(2, set.UnflushedCount(1));
        set.Flushed(1, boot: 7, upTo: 4);          // began before the write landed
        Assert.Equal(2, set.UnflushedCount(1));
        set.Flushed(1, boot: 7, upTo: 5);
        Assert.Equal(0, set.UnflushedCount(1));
        Assert.Equal(0, set.OutOfSyncCount);
    }

    [Fact]
    public void AnAnswerFromANewActivationPutsWhatTheOldCacheHeldOutOfSync()
    {
        var set = new MirrorSet(2, 8);
        set.Wrote(1, 0, 1, boot: 7, landed: 1);
        set.Wrote(1, 3, 1, boot: 9, landed: 1);    // the copy came back: slot 0 went with its cache
        Assert.True(set.IsOutOfSync(1, 0));
        Assert.False(set.IsOutOfSync(1, 3));
        Assert.Equal(1, set.UnflushedCount(1));
    }

    [Fact]
    public void AFlushFromANewActivationPutsTheUnflushedOutOfSync()
    {
        var set = new MirrorSet(2, 8);
        set.Wrote(1, 4, 2, boot: 7, landed: 3);
        set.Flushed(1, boot: 8, upTo: 10);
        Assert.True(set.IsOutOfSync(1, 4));
        Assert.True(set.IsOutOfSync(1, 5));
        Assert.Equal(0, set.UnflushedCount(1));
    }

    [Fact]
    public void AFailedCommandPutsItsSlotsOutOfSync()
    {
        var set = new MirrorSet(3, 8);
        set.Wrote(2, 1, 1, boot: 7, landed: 1);
        set.Failed(2, 1, 3);
        Assert.Equal(3, set.OutOfSyncCount);
        Assert.Equal(0, set.UnflushedCount(2));
        Assert.False(set.IsOutOfSync(1, 1));       // the other copy took it
    }

    [Fact]
    public void AResyncTakesASlotOffTheRecordUnlessItWentOutOfSyncAgain()
    {
        var set = new MirrorSet(2, 8);
        set.Failed(1, 0, 2);
        var todo = set.ToResync(1, 10);
        set.Failed(1, 1, 1);                        // slot 1 failed again while the resync compared it
        foreach (var (slot, sequence) in todo)
        {
            set.Resynced(1, slot, sequence, wrote: true);
        }
        Assert.False(set.IsOutOfSync(1, 0));
        Assert.True(set.IsOutOfSync(1, 1));
        Assert.Equal(2, set.ResyncedSlots);
    }

    [Fact]
    public void AnswersInAnyOrderWaitForTheFlushOfTheLastLanding()
    {
        var set = new MirrorSet(2, 8);
        set.Wrote(1, 3, 1, boot: 7, landed: 11);   // the later command's answer came first
        set.Wrote(1, 3, 1, boot: 7, landed: 10);
        set.Flushed(1, boot: 7, upTo: 10);
        Assert.Equal(1, set.UnflushedCount(1));     // landing 11 is not on the medium yet
        set.Flushed(1, boot: 9, upTo: 20);          // and the copy came back without it
        Assert.True(set.IsOutOfSync(1, 3));
        Assert.False(set.CanStandIn(1, 3));
    }

    [Fact]
    public void ACopyThatMissedAWriteDoesNotStandInUntilTheSlotIsWrittenWhole()
    {
        var set = new MirrorSet(2, 8);
        set.AllOutOfSync();
        Assert.True(set.CanStandIn(1, 2));          // unverified: the version and the checks decide
        set.Failed(1, 2, 1);
        Assert.False(set.CanStandIn(1, 2));         // stale: it may hold older bytes under the same version
        set.Wrote(1, 2, 1, boot: 7, landed: 1);     // a later page command wrote the slot whole
        Assert.True(set.CanStandIn(1, 2));
        Assert.True(set.IsOutOfSync(1, 2));         // still compared once
        set.Failed(1, 4, 1);
        var (slot, sequence) = set.ToResync(1, 100).Single(e => e.Slot == 4);
        set.Resynced(1, slot, sequence, wrote: true);
        Assert.True(set.CanStandIn(1, 4));
        Assert.False(set.IsOutOfSync(1, 4));
    }

    [Fact]
    public void ASlotThatCannotBeSettledGoesToTheBackOfTheQueue()
    {
        var set = new MirrorSet(2, 8);
        set.Failed(1, 0, 3);
        Assert.Equal([0L, 1L, 2L], set.ToResync(1, 10).Select(e => e.Slot));
        var (slot, sequence) = set.ToResync(1, 1)[0];
        set.Defer(1, slot, sequence);
        Assert.Equal([1L, 2L, 0L], set.ToResync(1, 10).Select(e => e.Slot));
        Assert.False(set.CanStandIn(1, 0));         // deferred as it was: still stale
        set.Defer(1, 1, sequence);                  // a sequence it no longer has: nothing moves
        Assert.Equal([1L, 2L, 0L], set.ToResync(1, 10).Select(e => e.Slot));
    }

    [Fact]
    public void BadCopiesAndSlotsAreRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new MirrorSet(1, 8));
        Assert.Throws<ArgumentOutOfRangeException>(() => new MirrorSet(4, 8));
        var set = new MirrorSet(2, 8);
        Assert.Throws<ArgumentOutOfRangeException>(() => set.Wrote(0, 0, 1, 1, 1)); // the primary keeps no record of itself
        Assert.Throws<ArgumentOutOfRangeException>(() => set.Failed(2, 0, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => set.Failed(1, 7, 2));
    }

    [Fact]
    public void JudgeKeepsSlotsThatAgree() =>
        Assert.Equal(MirrorAction.InSync, MirrorSet.Judge(Slot(5), Slot(5)));

    [Theory]
    [InlineData(5, 1, null, 5, 2, null)]            // same version, other bytes
    [InlineData(5, 1, null, 4, 1, null)]            // the copy is behind
    [InlineData(5, 1, null, 5, 1, CheckKind.Guard)] // the copy fails a check
    [InlineData(5, 1, null, 5, 1, CheckKind.Version)]
    public void JudgeWritesAGoodPrimaryToACopyThatDiffers(long held, byte fill, CheckKind? failed, long copyHeld, byte copyFill, CheckKind? copyFailed) =>
        Assert.Equal(MirrorAction.WriteCopy, MirrorSet.Judge(Slot(held, fill, failed), Slot(copyHeld, copyFill, copyFailed)));

    [Fact]
    public void JudgeRepairsAPrimaryOnlyFromAGoodCopyOfTheSameVersion()
    {
        Assert.Equal(MirrorAction.RepairPrimary, MirrorSet.Judge(Slot(5, 1, CheckKind.Ref), Slot(5, 2)));
        Assert.Equal(MirrorAction.Unrepairable, MirrorSet.Judge(Slot(5, 1, CheckKind.Ref), Slot(4, 2)));    // an older version is not the data
        Assert.Equal(MirrorAction.Unrepairable, MirrorSet.Judge(Slot(5, 1, CheckKind.Ref), Slot(6, 2)));
        Assert.Equal(MirrorAction.Unrepairable, MirrorSet.Judge(Slot(5, 1, CheckKind.Guard), Slot(5, 1, CheckKind.Guard)));
    }

    [Fact]
    public void JudgeLeavesACopyAheadOfThePrimary() =>
        Assert.Equal(MirrorAction.CopyAhead, MirrorSet.Judge(Slot(5), Slot(6)));
}
