using OrleansDif.Grains;

namespace OrleansDif.Grains.Tests.Writeback;

/// <summary>The flusher's durability ledger, transition by transition (no cluster).</summary>
public sealed class DurabilityLedgerTests
{
    private const long Me = 77, Other = 88;
    private static long V(long epoch, long count) => PageVersion.First(epoch) + count;

    [Fact]
    public void AWriteIsOwedUntilACommandCarryingItLands()
    {
        var ledger = new DurabilityLedger(Me);
        ledger.Registered(page: 3, V(5, 1), generation: 1);
        Assert.Contains(3, ledger.PendingPages);
        // The activation died before anything landed: its acknowledged write is on no disk.
        Assert.True(ledger.JudgeLoss(3, epoch: 5, flusher: Me, loadedVersion: 0));
        Assert.DoesNotContain(3, ledger.PendingPages); // judged once, forgotten
    }

    [Fact]
    public void AWriteThatLandedIsNotLostWhenTheNextActivationFindsIt()
    {
        var ledger = new DurabilityLedger(Me);
        ledger.Registered(3, V(5, 1), 1);
        ledger.Landed(3, disk: 0, V(5, 2), generation: 1, boot: 1000);
        Assert.True(ledger.Unflushed(3));
        // Killed between the disk write and the end of writeback: the next activation loaded V(5,2).
        Assert.False(ledger.JudgeLoss(3, 5, Me, loadedVersion: V(5, 2)));
    }

    [Fact]
    public void ALandedWriteTheNextActivationDidNotFindIsLost()
    {
        var ledger = new DurabilityLedger(Me);
        ledger.Registered(3, V(5, 1), 1);
        ledger.Landed(3, 0, V(5, 1), 1, 1000);
        // The disk's cache went with its silo before a flush: the page came back with what was flushed before.
        Assert.True(ledger.JudgeLoss(3, 5, Me, loadedVersion: 0));
    }

    [Fact]
    public void AWriteRegisteredAfterTheSnapshotStaysOwedWhenTheSnapshotLands()
    {
        var ledger = new DurabilityLedger(Me);
        ledger.Registered(3, V(5, 1), 1);
        ledger.Registered(3, V(5, 2), 2);                 // written under writeback (bounce), registered again
        ledger.Landed(3, 0, V(5, 1), generation: 1, 1000); // the snapshot of registration 1
        Assert.True(ledger.JudgeLoss(3, 5, Me, loadedVersion: V(5, 1)));
    }

    [Fact]
    public void WhatLandedBeforeAFlushWasSentIsTakenAndSettledByItsAnswer()
    {
        var ledger = new DurabilityLedger(Me);
        ledger.Registered(3, V(5, 1), 1);
        ledger.Landed(3, disk: 0, V(5, 1), 1, boot: 1000);
        ledger.Landed(4, disk: 1, V(5, 1), 1, boot: 2000);
        var taken = ledger.TakeUnflushed(0);
        Assert.Equal([3], taken.Keys);
        Assert.False(ledger.Unflushed(3));                  // taken: a flush under way owns it
        Assert.True(ledger.Unflushed(4));                   // another disk's: untouched
        Assert.Empty(ledger.TakeUnflushed(0));
        Assert.Empty(ledger.FlushAnswered(0, taken, 1000)); // the same boot: on the medium
        Assert.Equal(V(5, 1), ledger.Durable(3));
    }

    [Fact]
    public void AVersionInALostCacheThatTheFlushedBatchSupersededIsNotWrittenAgain()
    {
        var ledger = new DurabilityLedger(Me);
        ledger.Landed(3, disk: 0, V(5, 1), 1, boot: 1000);  // in a cache that then went with its silo
        ledger.Landed(4, disk: 0, V(5, 1), 1, boot: 1000);
        var covered = ledger.TakeUnflushed(0);
        ledger.LandedDurably(3, V(5, 2), 2, covered);        // the batch sent with the flush carried page 3 again
        Assert.Equal([(4, V(5, 1))], ledger.FlushAnswered(0, covered, 1001)); // only page 4 is lost with the cache
        Assert.Equal(V(5, 2), ledger.Durable(3));
    }

    [Fact]
    public void WhatWasTakenForAFlushThatDidNotAnswerIsOwedAFlushAgain()
    {
        var ledger = new DurabilityLedger(Me);
        ledger.Landed(3, disk: 0, V(5, 1), 1, boot: 1000);
        var taken = ledger.TakeUnflushed(0);
        Assert.Empty(ledger.FlushAnswered(0, taken, null));
        Assert.True(ledger.Unflushed(3));
        Assert.Equal(0, ledger.Durable(3));
        // Flushed from another boot: the cache it landed in is gone, and the page is to be written again.
        Assert.Equal([(3, V(5, 1))], ledger.FlushAnswered(0, ledger.TakeUnflushed(0), 1001));
        Assert.Equal(0, ledger.Durable(3));
    }

    [Fact]
    public void AnotherFlushersActivationIsJudgedByWhatItAcknowledgedLastWhenTheTableSays()
    {
        var ledger = new DurabilityLedger(Me);
        // Its flusher died with it: the acknowledgement table says what it acknowledged last.
        Assert.False(ledger.JudgeLoss(3, 5, Other, loadedVersion: V(5, 9), lastAcknowledged: V(5, 9))); // on the disk
        Assert.False(ledger.JudgeLoss(3, 5, Other, loadedVersion: V(5, 9), lastAcknowledged: V(5, 7))); // and more
        Assert.True(ledger.JudgeLoss(3, 5, Other, loadedVersion: V(5, 8), lastAcknowledged: V(5, 9)));  // one write short
        Assert.True(ledger.JudgeLoss(3, 5, Other, loadedVersion: V(4, 3), lastAcknowledged: V(5, 1)));  // none of its writes
        Assert.False(ledger.JudgeLoss(3, 5, Other, loadedVersion: V(4, 3), lastAcknowledged: 0));       // it acknowledged none
        Assert.True(ledger.JudgeLoss(3, 5, Other, loadedVersion: V(5, 9), lastAcknowledged: -1));       // nobody can say
    }

    [Fact]
    public void ARegistrationThatArrivesAfterACommandCarryingItLandedIsNotOwed()
    {
        var ledger = new DurabilityLedger(Me);
        // The flusher interleaves calls: a writeback that found the page dirty by asking it landed first.
        ledger.Landed(3, 0, V(5, 2), generation: 2, boot: 1001);
        ledger.Registered(3, V(5, 2), 2);
        Assert.DoesNotContain(3, ledger.PendingPages.Where(p => !ledger.Unflushed(p)));
        Assert.False(ledger.DropOwedOfOtherActivations(3, current: 6, loadedVersion: V(5, 2))); // nothing owed to call lost
        // A later registration of the same activation is owed as before.
        ledger.Registered(3, V(5, 3), 3);
        Assert.True(ledger.DropOwedOfOtherActivations(3, current: 6, loadedVersion: V(5, 2)));
    }

    [Fact]
    public void AfterAPowerLossTheDirtyLogsPeriodStartJudgesExactly()
    {
        var ledger = new DurabilityLedger(Me);
        // The table went with the power; the dirty log says where the dead activation's last dirty period began.
        Assert.False(ledger.JudgeLoss(3, 5, Other, loadedVersion: V(5, 4), periodStart: V(5, 4))); // a writeback after its last write landed
        Assert.False(ledger.JudgeLoss(3, 5, Other, loadedVersion: V(5, 9), periodStart: V(5, 4)));
        Assert.True(ledger.JudgeLoss(3, 5, Other, loadedVersion: V(5, 3), periodStart: V(5, 4)));  // the period's writes never landed
        Assert.True(ledger.JudgeLoss(3, 5, Other, loadedVersion: V(4, 3), periodStart: V(5, 1)));
        Assert.False(ledger.JudgeLoss(3, 5, Other, loadedVersion: V(4, 3), periodStart: 0));       // it opened no period: wrote nothing
        Assert.True(ledger.JudgeLoss(3, 5, Other, loadedVersion: V(5, 9), periodStart: -1));       // nobody can say
        // The table, when it lived, says more: it wins.
        Assert.True(ledger.JudgeLoss(3, 5, Other, loadedVersion: V(5, 4), lastAcknowledged: V(5, 6), periodStart: V(5, 4)));
    }

    [Fact]
    public void TheTableOverridesWhatWasRegisteredButNeverAcknowledged()
    {
        var ledger = new DurabilityLedger(Me);
        ledger.Registered(3, V(5, 2), 2);   // registered, and the silo died before the write was acknowledged
        Assert.False(ledger.JudgeLoss(3, 5, Me, loadedVersion: V(5, 1), lastAcknowledged: V(5, 1)));
        ledger.Registered(3, V(6, 2), 2);
        Assert.True(ledger.JudgeLoss(3, 6, Me, loadedVersion: V(6, 1), lastAcknowledged: V(6, 2)));
        Assert.DoesNotContain(3, ledger.PendingPages); // judged and forgotten either way
    }

    [Fact]
    public void AnotherFlushersActivationIsJudgedConservatively()
    {
        var ledger = new DurabilityLedger(Me);
        Assert.True(ledger.JudgeLoss(3, 5, Other, loadedVersion: V(5, 9)));
    }

    [Fact]
    public void AFlushFromTheSameBootMakesDurableAndFromAnotherSendsPagesBack()
    {
        var ledger = new DurabilityLedger(Me);
        ledger.Registered(1, V(5, 1), 1);
        ledger.Registered(2, V(6, 1), 1);
        ledger.Landed(1, disk: 0, V(5, 1), 1, boot: 1000);
        ledger.Landed(2, disk: 1, V(6, 1), 1, boot: 2000);
        var work = ledger.TakeFlushWork();
        Assert.Equal([0, 1], work.Select(w => w.Disk).Order());
        Assert.Empty(ledger.FlushAnswered(0, work.Single(w => w.Disk == 0).Pages, boot: 1000));
        Assert.Equal(V(5, 1), ledger.Durable(1));
        Assert.False(ledger.Unflushed(1));
        // Disk 1 answers from a new activation: its cache, with page 2's write, is gone; the write is owed again.
        Assert.Equal([(2, V(6, 1))], ledger.FlushAnswered(1, work.Single(w => w.Disk == 1).Pages, boot: 2001));
        Assert.Equal(0, ledger.Durable(2));
        Assert.Contains(2, ledger.PendingPages);
    }

    [Fact]
    public void AFlushThatWasNotAnsweredKeepsItsPagesForTheNext()
    {
        var ledger = new DurabilityLedger(Me);
        ledger.Landed(1, 0, V(5, 1), 1, 1000);
        var work = ledger.TakeFlushWork();
        Assert.Empty(ledger.FlushAnswered(0, work[0].Pages, boot: null));
        Assert.True(ledger.Unflushed(1));
        Assert.Single(ledger.TakeFlushWork());
    }

    [Fact]
    public void AFlushCanBeRequestedForADiskWithNothingLandedHere()
    {
        var ledger = new DurabilityLedger(Me);
        ledger.RequestFlush(2);
        var work = ledger.TakeFlushWork();
        Assert.Equal(2, Assert.Single(work).Disk);
        Assert.Empty(work[0].Pages);
        Assert.Empty(ledger.TakeFlushWork()); // once
    }

    [Fact]
    public void AdoptedAndEvictedPages()
    {
        var ledger = new DurabilityLedger(Me);
        ledger.Adopt(4, disk: 1, V(5, 3), boot: 1000);  // written back by a flusher that died
        var work = ledger.TakeFlushWork();
        Assert.Empty(ledger.FlushAnswered(1, work[0].Pages, 1000));
        Assert.Equal(V(5, 3), ledger.Durable(4));
        ledger.Registered(6, V(7, 1), 1);
        ledger.LandedDurably(6, V(7, 1), 1);            // handed over at deactivation, written and flushed
        Assert.Equal(V(7, 1), ledger.Durable(6));
        Assert.DoesNotContain(6, ledger.PendingPages);
    }

    [Fact]
    public void OwedWritesOfAnActivationThatLeftNoIntentAreDroppedAsLost()
    {
        var ledger = new DurabilityLedger(Me);
        ledger.Registered(3, V(5, 1), 1);
        Assert.False(ledger.DropOwedOfOtherActivations(3, current: 5));
        Assert.True(ledger.DropOwedOfOtherActivations(3, current: 6));
        Assert.False(ledger.DropOwedOfOtherActivations(3, current: 6));
    }

    [Fact]
    public void OwedWritesOfAnActivationWithoutIntentAreJudgedByTheAcknowledgementTableTheyRegisteredWith()
    {
        const long Table = 77;
        var ledger = new DurabilityLedger(Me);
        // Its own entry: it acknowledged up to 5.6, the next activation loaded 5.6: nothing lost (the case a chaos run
        // reported falsely: a registration left owed after the activation made everything durable and went away).
        ledger.Registered(3, V(5, 6), 1, Table);
        Assert.False(ledger.DropOwedOfOtherActivations(3, current: 9, loadedVersion: V(5, 6), ackTable: Table, tableEntry: V(5, 6)));
        // It acknowledged 5.7, the next activation loaded 5.6: lost.
        ledger.Registered(3, V(5, 7), 2, Table);
        Assert.True(ledger.DropOwedOfOtherActivations(3, current: 9, loadedVersion: V(5, 6), ackTable: Table, tableEntry: V(5, 7)));
        // An entry of an earlier activation, or none: it acknowledged nothing (registered, then died before the answer).
        ledger.Registered(3, V(5, 1), 1, Table);
        Assert.False(ledger.DropOwedOfOtherActivations(3, current: 9, loadedVersion: V(4, 3), ackTable: Table, tableEntry: V(4, 3)));
        ledger.Registered(3, V(5, 1), 1, Table);
        Assert.False(ledger.DropOwedOfOtherActivations(3, current: 9, loadedVersion: 0, ackTable: Table, tableEntry: 0));
        // An entry of a later activation hides what it acknowledged; another table, or none, says nothing: lost.
        ledger.Registered(3, V(5, 1), 1, Table);
        Assert.True(ledger.DropOwedOfOtherActivations(3, current: 9, loadedVersion: V(7, 2), ackTable: Table, tableEntry: V(7, 2)));
        ledger.Registered(3, V(5, 1), 1, Table);
        Assert.True(ledger.DropOwedOfOtherActivations(3, current: 9, loadedVersion: V(5, 1), ackTable: 78, tableEntry: V(5, 1)));
        ledger.Registered(3, V(5, 1), 1, Table);
        Assert.True(ledger.DropOwedOfOtherActivations(3, current: 9, loadedVersion: V(5, 1), ackTable: Table, tableEntry: -1));
        ledger.Registered(3, V(5, 1), 1);
        Assert.True(ledger.DropOwedOfOtherActivations(3, current: 9, loadedVersion: V(5, 1), ackTable: Table, tableEntry: V(5, 1)));
    }
}
