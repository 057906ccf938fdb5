namespace OrleansDif.Nbd.Tests.Devices;

/// <summary>Each handle of a device is told of every writeback error recorded after it opened, once (errseq).</summary>
public sealed class DeviceErrorLogTests
{
    private static FsyncResult Told(long flusher, long mark, params (long Seq, int Page)[] errors) =>
        new(errors.Length == 0, 1, null, Errors: [.. errors.Select(e => new WritebackError(flusher, e.Seq, [e.Page], "lost"))], Mark: new ErrorMark(flusher, mark));

    [Fact]
    public void TwoHandlesAreEachToldOnceAndAHandleOpenedAfterIsNotTold()
    {
        var log = new DeviceErrorLog();
        log.Start(new ErrorMark(7, 0));
        long a = 0, b = 0;                                   // two handles open at mark 0
        log.Learn(Told(7, 1, (1, 12)));
        long c = 1;                                          // opened after the error (mark 1)

        Assert.Equal([12], Assert.Single(log.Unseen(ref a)).Pages);
        Assert.Empty(log.Unseen(ref a));                     // once
        Assert.Equal([12], Assert.Single(log.Unseen(ref b)).Pages);
        Assert.Empty(log.Unseen(ref c));
        Assert.Equal(new ErrorMark(7, 1), log.Seen);
    }

    [Fact]
    public void AnErrorRecordedBeforeAHandleOpenedButLearntAfterIsNotItsAndDuplicatesAreLearntOnce()
    {
        var log = new DeviceErrorLog();
        log.Start(new ErrorMark(7, 0));
        long opened = 1;                                     // the volume had recorded error 1 when it opened
        log.Learn(Told(7, 2, (1, 3), (2, 4)));
        log.Learn(Told(7, 2, (1, 3), (2, 4)));               // an fsync side by side was told the same
        Assert.Equal([4], Assert.Single(log.Unseen(ref opened)).Pages);
        long fresh = 0;
        Assert.Equal(2, log.Unseen(ref fresh).Length);
    }

    [Fact]
    public void AHandleBehindWhatIsKeptIsToldThatErrorsWereDropped()
    {
        var log = new DeviceErrorLog(capacity: 2);
        log.Start(new ErrorMark(7, 0));
        long seen = 0;
        log.Learn(Told(7, 3, (1, 1), (2, 2), (3, 3)));
        WritebackError[] told = log.Unseen(ref seen);
        Assert.Equal(3, told.Length);
        Assert.Contains("no longer kept", told[0].Cause);
        Assert.Equal([[2], [3]], told.Skip(1).Select(e => e.Pages));
    }

    [Fact]
    public void ErrorsOfANewFlusherActivationReachHandlesOpenedUnderTheOldOne()
    {
        var log = new DeviceErrorLog();
        log.Start(new ErrorMark(7, 5));
        long seen = 5;                                       // opened under the old activation
        log.Learn(Told(8, 1_000_006, (1_000_006, 40)));      // the flusher came back: its numbers go on, a block above
        Assert.Equal([40], Assert.Single(log.Unseen(ref seen)).Pages);
        Assert.Equal(new ErrorMark(8, 1_000_006), log.Seen);
        log.Learn(Told(7, 5));                               // a late answer of the old activation: nothing goes back
        Assert.Equal(new ErrorMark(8, 1_000_006), log.Seen);
    }
}
