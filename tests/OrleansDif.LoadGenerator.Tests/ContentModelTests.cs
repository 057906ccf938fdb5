namespace OrleansDif.LoadGenerator.Tests;

public class ContentModelTests
{
    private static byte[] Page(byte fill)
    {
        byte[] b = new byte[VolumeConfig.PageSize];
        Array.Fill(b, fill);
        return b;
    }

    [Fact]
    public void WritesApplyInVersionOrderWhateverOrderTheyAreAcknowledgedIn()
    {
        var model = new ContentModel();
        model.SetBase(3, Page(0xAA), version: 10);
        model.Acknowledge(3, 13, 0, [3, 3, 3]);
        model.Acknowledge(3, 11, 0, [1, 1, 1, 1]);
        model.Acknowledge(3, 12, 1, [2]);
        byte[] want = Page(0xAA);
        want[0] = 3; want[1] = 3; want[2] = 3; want[3] = 1;
        Assert.Equal(want, model.Expected(3));
        Assert.Equal(0, model.PendingWrites);
        Assert.Equal(3, model.AcknowledgedWrites);
        Assert.Equal([3], model.TouchedPages);
    }

    [Fact]
    public void AGapKeepsLaterWritesPendingButTheyStillCount()
    {
        var model = new ContentModel();
        model.SetBase(0, Page(0), version: 0);
        model.Acknowledge(0, 2, 10, [9]);   // version 1 never acknowledged (a call that failed)
        Assert.Equal(1, model.PendingWrites);
        Assert.Equal(9, model.Expected(0)[10]);
    }

    [Fact]
    public void TheSameVersionTwiceIsABrokenPage()
    {
        var model = new ContentModel();
        model.SetBase(0, Page(0), version: 5);
        model.Acknowledge(0, 6, 0, [1]);
        Assert.Throws<InvalidOperationException>(() => model.Acknowledge(0, 6, 0, [2]));
        Assert.Throws<InvalidOperationException>(() => model.Acknowledge(0, 4, 0, [2]));
        model.Acknowledge(0, 8, 0, [3]);
        Assert.Throws<InvalidOperationException>(() => model.Acknowledge(0, 8, 0, [4]));
    }

    [Fact]
    public void UntouchedPagesAreZeroAndBadWritesAreRefused()
    {
        var model = new ContentModel();
        Assert.Equal(new byte[VolumeConfig.PageSize], model.Expected(42));
        Assert.Throws<ArgumentOutOfRangeException>(() => model.Acknowledge(0, 1, 4095, [1, 2]));
        Assert.Throws<ArgumentOutOfRangeException>(() => model.Acknowledge(0, 1, 0, []));
        Assert.Throws<ArgumentException>(() => model.SetBase(0, new byte[10], 0));
    }

    [Fact]
    public void RandomInterleavingsMatchAPlainReplay()
    {
        var rng = new Random(5);
        var model = new ContentModel();
        byte[] replay = Page(0);
        model.SetBase(1, replay, 0);
        var writes = Enumerable.Range(1, 500).Select(v =>
        {
            int len = rng.Next(1, 300);
            byte[] data = new byte[len];
            rng.NextBytes(data);
            return (Version: (long)v, Offset: rng.Next(0, VolumeConfig.PageSize - len + 1), Data: data);
        }).ToList();
        foreach (var w in writes)
        {
            w.Data.CopyTo(replay, w.Offset);
        }
        // Acknowledge in a shuffled order, as concurrent writers would.
        foreach (var w in writes.OrderBy(_ => rng.Next()))
        {
            model.Acknowledge(1, w.Version, w.Offset, w.Data);
        }
        Assert.Equal(replay, model.Expected(1));
        Assert.Equal(0, model.PendingWrites);
    }

    [Fact]
    public void APageThatComesBackDropsItsUnsyncedWritesAndCountsThem()
    {
        var model = new ContentModel(keepUnsynced: true);
        model.SetBase(5, Page(0), version: 0, activation: 111);
        model.Acknowledge(5, 1, 0, [1], activation: 111, loadedVersion: 0);
        var mark = model.SyncMark();
        model.Synced(mark);                                               // version 1 is durable
        model.Acknowledge(5, 2, 1, [2], activation: 111, loadedVersion: 0);
        model.Acknowledge(5, 3, 2, [3], activation: 111, loadedVersion: 0);
        // The silo dies; the page comes back at version 1, and a new write gets version 2 again.
        model.Acknowledge(5, 2, 3, [4], activation: 222, loadedVersion: 1);
        byte[] want = Page(0);
        want[0] = 1; want[3] = 4;
        Assert.Equal(want, model.Expected(5));
        Assert.Equal(2, model.UnsyncedLost);
        Assert.Equal(0, model.SyncedLost);
        Assert.Equal(1, model.Reactivations);
        // A late acknowledgement of the old activation beyond what came back is lost too, not applied.
        model.Acknowledge(5, 4, 4, [9], activation: 111, loadedVersion: 0);
        Assert.Equal(want, model.Expected(5));
        Assert.Equal(3, model.UnsyncedLost);
    }

    [Fact]
    public void APageThatComesBackWithoutSyncedWritesIsASyncedLoss()
    {
        var model = new ContentModel(keepUnsynced: true);
        model.SetBase(7, Page(0), version: 4, activation: 1);
        model.Acknowledge(7, 5, 0, [1], activation: 1, loadedVersion: 4);
        model.Acknowledge(7, 6, 0, [2], activation: 1, loadedVersion: 4);
        model.Synced(model.SyncMark());
        model.Observe(7, activation: 2, loadedVersion: 5);               // came back without version 6
        Assert.Equal(1, model.SyncedLost);
        Assert.Single(model.Violations);
        // An fsync mark taken in the old activation that returns after the page came back short is one too.
        var other = new ContentModel(keepUnsynced: true);
        other.SetBase(1, Page(0), version: 0, activation: 10);
        other.Acknowledge(1, 1, 0, [1], activation: 10, loadedVersion: 0);
        var mark = other.SyncMark();
        other.Observe(1, activation: 11, loadedVersion: 0);
        Assert.Equal(1, other.UnsyncedLost);
        other.Synced(mark);
        Assert.Equal(1, other.SyncedLost);
    }
    [Fact]
    public void ALossReportIsBorneOutByAWriteAcknowledgedAndNotLoadedOrByAWriteInDoubt()
    {
        var model = new ContentModel(keepUnsynced: true);
        model.SetBase(1, Page(0), version: 0, activation: 10);
        model.Acknowledge(1, 1, 0, [1], activation: 10, loadedVersion: 0);
        model.Observe(1, activation: 11, loadedVersion: 1);   // came back with everything acknowledged
        Assert.False(model.LossJustified(1));                 // a report naming it would be false
        model.Acknowledge(1, 2, 0, [2], activation: 11, loadedVersion: 1);
        model.Observe(1, activation: 12, loadedVersion: 1);   // came back without version 2
        Assert.True(model.LossJustified(1));

        // A write that got no answer: the dead activation may have acknowledged it, the answer lost with the silo.
        model.SetBase(2, Page(0), version: 0, activation: 20);
        model.Acknowledge(2, 1, 0, [1], activation: 20, loadedVersion: 0);
        model.InDoubt(2);
        model.Observe(2, activation: 21, loadedVersion: 1);
        Assert.True(model.LossJustified(2));
    }

    [Fact]
    public void APageIsDescribedByEachActivationWithWhatItAcknowledgedAndWhatItsSuccessorLoaded()
    {
        var model = new ContentModel(keepUnsynced: true);
        long v(long epoch, long count) => PageVersion.First(epoch) + count;
        model.SetBase(3, Page(0), version: v(5, 0), activation: 5);
        model.Acknowledge(3, v(5, 1), 0, [1], activation: 5, loadedVersion: v(5, 0));
        model.Acknowledge(3, v(5, 2), 0, [2], activation: 5, loadedVersion: v(5, 0));
        model.InDoubt(3);
        model.Observe(3, activation: 9, loadedVersion: v(5, 1));
        model.Acknowledge(3, v(9, 1), 0, [3], activation: 9, loadedVersion: v(5, 1));
        Assert.Equal("page 3: now activation 9 at 9.1; earlier: 5: acknowledged 5.2, next loaded 5.1, a write in doubt", model.Describe(3));
        Assert.Equal("page 4: now activation 0 at 0.0; earlier: none", model.Describe(4));
    }

    [Fact]
    public void AWriteInDoubtCountsForTheActivationItWasSentToAfterTheModelMovedOn()
    {
        var model = new ContentModel(keepUnsynced: true);
        model.SetBase(5, Page(0), version: 0, activation: 41);
        model.Acknowledge(5, 1, 0, [1], activation: 41, loadedVersion: 0);
        long sentTo = model.ActivationOf(5);
        Assert.Equal(41, sentTo);
        model.Observe(5, activation: 97, loadedVersion: 1);   // another writer saw the page come back meanwhile
        model.InDoubt(5, sentTo);                              // then this write's answer was found lost with 41
        Assert.True(model.LossJustified(5));                   // 41 may have acknowledged it: a report is borne out
        var other = new ContentModel(keepUnsynced: true);
        other.SetBase(5, Page(0), version: 0, activation: 41);
        other.Acknowledge(5, 1, 0, [1], activation: 41, loadedVersion: 0);
        other.Observe(5, activation: 97, loadedVersion: 1);
        other.InDoubt(5);                                      // without the activation it was sent to: only 97
        Assert.False(other.LossJustified(5));
    }
}
