using OrleansDif.Grains;
using OrleansDif.Protection;

namespace OrleansDif.Grains.Tests.Writeback;

/// <summary>The flusher's plain parts: the dirty set, command building, the fsync plan (no cluster).</summary>
public sealed class FlusherPartsTests
{
    private static readonly VolumeConfig Config = new() { Id = "v", Pages = 64, Disks = 2, StripePages = 4 };

    [Fact]
    public void RunsAreContiguousOnOneDiskAndCappedInLength()
    {
        var set = new DirtySet();
        // Stripe units of 4 pages over 2 disks: pages 0-3 and 8-11 are contiguous on disk 0, 4-7 on disk 1.
        var runs = set.PlanRuns([9, 0, 1, 2, 3, 8, 4, 5, 20], Config, maxRunPages: 6);
        Assert.Contains(runs, r => r.Disk == 0 && r.Pages.SequenceEqual([0, 1, 2, 3, 8, 9]));
        Assert.Contains(runs, r => r.Disk == 1 && r.Pages.SequenceEqual([4, 5]));
        Assert.Contains(runs, r => r.Disk == 1 && r.Pages.SequenceEqual([20])); // disk 1 too, but not contiguous with 4-5
        Assert.Equal(3, runs.Count);
        Assert.Equal(2, set.PlanRuns([0, 1, 2], Config, maxRunPages: 2).Count);
    }

    [Fact]
    public void BatchesGroupTheRunsOfOneDiskUpToTheirCap()
    {
        var set = new DirtySet();
        // Disk 0: runs [0,1] and [8,9] (cap 2 per run); disk 1: [4,5] and [20].
        var batches = set.PlanBatches([0, 1, 8, 9, 4, 5, 20], Config, maxRunPages: 2, maxBatchPages: 3);
        Assert.Equal(3, batches.Count);
        Assert.Contains(batches, b => b.Disk == 1 && b.Runs.Count == 2 && b.Runs.SelectMany(r => r).Order().SequenceEqual([4, 5, 20]));
        var disk0 = batches.Where(b => b.Disk == 0).ToList();
        Assert.Equal(2, disk0.Count); // 2 + 2 pages do not fit in one batch of 3
        Assert.All(disk0, b => Assert.Single(b.Runs));
        Assert.Equal([0, 1, 8, 9], disk0.SelectMany(b => b.Runs.SelectMany(r => r)).Order());
        Assert.Equal(2, set.PlanBatches([0, 1, 8, 9, 4, 5, 20], Config, maxRunPages: 64, maxBatchPages: 256).Count); // one per disk
    }

    [Fact]
    public void APageInFlightIsInNoOtherRunAndLeavesFlightWithItsOwnRunOnly()
    {
        var set = new DirtySet();
        set.MarkDirty(1, now: 10);
        set.MarkDirty(2, now: 10);
        Task first = new TaskCompletionSource().Task, second = new TaskCompletionSource().Task;
        set.Start([1, 2], first);
        Assert.False(set.IsDirty(1));
        Assert.True(set.IsInFlight(1));
        Assert.Empty(set.PlanRuns([1, 2], Config, 64));
        Assert.Equal([first], set.RunsCarrying([1, 2, 3]));
        Assert.Equal(2, set.Pending);

        set.MarkDirty(1, now: 20); // written again under writeback
        Assert.Empty(set.NotInFlight());
        set.Finish([1, 2], second); // not their run: nothing changes
        Assert.True(set.IsInFlight(2));
        set.Finish([1, 2], first);
        Assert.False(set.IsInFlight(2));
        Assert.Equal([1], set.NotInFlight());
    }

    [Fact]
    public void AnAgedPageTakesTheDirtyPagesOfItsStripeUnitAlong()
    {
        var set = new DirtySet();
        set.MarkDirty(1, now: 0);
        set.MarkDirty(3, now: 90);   // same unit (0-3), young
        set.MarkDirty(6, now: 90);   // another unit, young
        Assert.Empty(set.AgedUnits(now: 50, age: 100, stripePages: 4));
        Assert.Equal([1, 3], set.AgedUnits(now: 100, age: 100, stripePages: 4).Order());
        set.MarkDirty(1, now: 95); // marking again keeps the age
        Assert.Equal([1, 3], set.AgedUnits(now: 100, age: 100, stripePages: 4).Order());
    }

    private static WritebackSnapshot Snapshot(byte fill, long version, ulong validTags, ulong[]? tags = null) =>
        new(BeginStatus.Started, Guid.NewGuid(), version, Enumerable.Repeat(fill, VolumeConfig.PageSize).ToArray(),
            tags ?? new ulong[Config.SectorsPerPage], validTags, false);

    [Theory]
    [InlineData(WritebackPolicy.Stable, 0)]
    [InlineData(WritebackPolicy.Bounce, 0)]
    [InlineData(WritebackPolicy.Unstable, 16)]
    public void ACommandReusesValidCachedTagsUnlessThePolicyDistrustsThemAndItsPiVerifies(WritebackPolicy policy, int computed)
    {
        var scheme = GrainHelpers.Scheme(Config);
        var builder = new CommandBuilder(Config, WritebackPolicies.For(policy), scheme);
        int size = Config.SectorSize;
        ulong[] good = Enumerable.Range(0, 8).Select(_ => (ulong)Crc16T10Dif.Compute(Enumerable.Repeat((byte)5, size).ToArray())).ToArray();
        DiskCommand command = builder.Build(lba: 16, [Snapshot(5, 7, ulong.MaxValue >> 56, good), Snapshot(5, 8, ulong.MaxValue >> 56, good)]);
        Assert.Equal(2, command.Pages);
        Assert.Equal([7L, 8L], command.Versions);
        Assert.Equal(computed, builder.TagsComputed);
        Assert.Equal(16 - computed, builder.TagsReused);
        Assert.Null(scheme.Verify(command.Data, command.Pi, 16));
        Assert.Empty(builder.FailingPages(command));

        // A cached tag that no longer matches its sector goes out as it is (stable trusts it): the disk refuses it.
        command.Data[VolumeConfig.PageSize + 3] ^= 1;
        Assert.Equal([1], builder.FailingPages(command));
    }

    [Fact]
    public void TagsNotCachedAreComputed()
    {
        var builder = new CommandBuilder(Config, WritebackPolicies.Stable, GrainHelpers.Scheme(Config));
        DiskCommand command = builder.Build(0, [Snapshot(9, 1, validTags: 0b1)]); // only sector 0's tag is cached (and wrong)
        Assert.Equal(7, builder.TagsComputed);
        Assert.Equal([0], builder.FailingPages(command));
    }

    [Fact]
    public void AnFsyncPlanIsDurableOnlyWhenEveryWantedPageSettled()
    {
        var plan = new FsyncPlan(pages: 3);
        plan.Want(1, 100, 5);
        plan.Want(2, 200, 5);
        Assert.False(plan.Done);
        Assert.Equal(100, plan.VersionOf(1));
        Assert.Equal(5, plan.ActivationOf(2));
        plan.Durable(1);
        FsyncResult pending = plan.Result(rounds: 9, [], new ErrorMark(7, 0));
        Assert.False(pending.Durable);
        Assert.Equal([2], pending.PendingPages!);
        Assert.False(pending.ReportsLoss);
        plan.Durable(2);
        Assert.True(plan.Done);
        FsyncResult done = plan.Result(9, [], new ErrorMark(7, 0));
        Assert.True(done.Durable);
        Assert.Equal(new ErrorMark(7, 0), done.Mark);
    }

    [Fact]
    public void AnFsyncPlanReportsEveryPageByCause()
    {
        var plan = new FsyncPlan(pages: 4);
        plan.Want(1, 100, 5);
        plan.Want(2, 100, 5);
        plan.Want(3, 100, 5);
        plan.Lost(1);
        plan.Poisoned(2);
        plan.Judged(4);
        Assert.Equal([1], plan.LostPages);
        var errors = new ErrorSequence(flusher: 7);
        errors.Record(plan.LostPages, "lost with a silo");
        FsyncResult r = plan.Result(9, errors.Since(new ErrorMark(7, 0)), errors.Sample());
        Assert.False(r.Durable);
        Assert.Equal([1], r.LostPages!);
        Assert.Equal(new ErrorMark(7, 1), r.Mark);
        Assert.Equal([2], r.PoisonedPages!);
        Assert.Equal([3], r.PendingPages!);
        Assert.True(r.ReportsLoss && r.ReportsPoison);
        Assert.Equal([1, 4], plan.ToAcknowledge.Order());
    }

    [Fact]
    public void EveryMarkOpenWhenAnErrorIsRecordedIsToldOfItAndALaterMarkIsNot()
    {
        var errors = new ErrorSequence(flusher: 7);
        ErrorMark first = errors.Sample();   // a handle open before the error
        ErrorMark second = errors.Sample();  // another one
        errors.Record([3, 4], "lost");
        ErrorMark later = errors.Sample();   // opened after it
        Assert.Equal([3, 4], Assert.Single(errors.Since(first)).Pages);
        Assert.Equal([3, 4], Assert.Single(errors.Since(second)).Pages);
        Assert.Empty(errors.Since(later));
        // A handle keeps the mark its fsync returned: told once.
        first = errors.Sample();
        Assert.Empty(errors.Since(first));
        errors.Record([9], "lost");
        Assert.Equal([[3, 4], [9]], errors.Since(second).Select(e => e.Pages));
        Assert.Equal([9], Assert.Single(errors.Since(first)).Pages);
    }

    [Fact]
    public void ANewFlusherActivationGoesOnFromWhatWasStoredAndTellsOldMarks()
    {
        var first = new ErrorSequence(flusher: 7, capacity: 2);
        ErrorMark opened = first.Sample();
        first.Record([1], "a");
        FlusherErrorState stored = first.ToStore();
        ErrorMark toldOfA = first.Sample();
        first.Record([2], "numbered, told, never stored"); // the activation dies before storing it
        ErrorMark toldOfUnstored = first.Sample();

        var next = new ErrorSequence(flusher: 8, stored, capacity: 2);
        Assert.True(next.Sample().Sequence > toldOfUnstored.Sequence); // numbers above anything the dead one gave out
        Assert.Equal([1], Assert.Single(next.Since(opened)).Pages);
        Assert.Empty(next.Since(toldOfA));
        next.Record([3], "b");
        Assert.Equal([[1], [3]], next.Since(opened).Select(e => e.Pages));
        Assert.Equal([3], Assert.Single(next.Since(toldOfUnstored)).Pages);
        next.Record([4], "c");                // page 1's error is forgotten
        WritebackError[] told = next.Since(opened);
        Assert.Equal(3, told.Length);
        Assert.Empty(told[0].Pages);          // "older errors were dropped": never nothing
        Assert.Contains("no longer kept", told[0].Cause);
        Assert.Equal([[3], [4]], told.Skip(1).Select(e => e.Pages));
    }

    [Fact]
    public void EachActivationReservesABlockAboveTheLastStoredOneEvenWithNoErrors()
    {
        var a = new ErrorSequence(flusher: 1, new FlusherErrorState());
        FlusherErrorState reserved = a.ToStore();     // stored when it activates
        a.Record([5], "told, never stored");
        var b = new ErrorSequence(flusher: 2, reserved);
        Assert.True(b.Sample().Sequence > a.Sample().Sequence);
        b.Record([6], "b");
        Assert.Equal([6], Assert.Single(b.Since(a.Sample())).Pages); // the handle told of a's error hears of b's
    }

    [Fact]
    public void AnUnreadableStoredSequenceTellsEveryOlderMarkThatErrorsMayBeGone()
    {
        var next = new ErrorSequence(flusher: 9, new FlusherErrorState { Sequence = 5, CorruptionReason = "bad CRC" });
        WritebackError[] told = next.Since(new ErrorMark(7, 5));
        Assert.Contains(told, e => e.Cause.Contains("could not be read"));
        Assert.Empty(next.Since(next.Sample()));
    }
}
