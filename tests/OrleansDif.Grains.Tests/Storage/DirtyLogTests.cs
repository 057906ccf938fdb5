using OrleansDif.Grains;

namespace OrleansDif.Grains.Tests.Storage;

/// <summary>The durable dirty log, on files (no cluster).</summary>
public sealed class DirtyLogTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dirty-").FullName;
    private string LogPath => Path.Combine(_dir, "dirty", "vol.log");

    private static long V(long epoch, long count) => PageVersion.First(epoch) + count;

    [Fact]
    public async Task ARecordIsDurableWhenItsTaskEndsAndAnotherOpenReadsIt()
    {
        long id;
        using (DirtyLog log = DirtyLog.Open(LogPath, 16))
        {
            id = log.Id;
            await log.Record(3, V(5, 1));
            await log.Record(4, V(2, 7));
            Assert.Equal(2, log.Records);
        }
        using DirtyLog again = DirtyLog.Open(LogPath, 16); // the next boot, or another silo
        Assert.Equal(id, again.Id);
        Assert.Equal(V(5, 1), again.Read(3));
        Assert.Equal(V(2, 7), again.Read(4));
        Assert.Equal(0, again.Read(5));
    }

    [Fact]
    public async Task RecordsMadeWhileAFlushRunsShareTheNextFlush()
    {
        using DirtyLog log = DirtyLog.Open(LogPath, 1024);
        Task[] records = Enumerable.Range(0, 1024).Select(p => log.Record(p, V(1, p + 1))).ToArray();
        await Task.WhenAll(records);
        Assert.Equal(1024, log.Records);
        Assert.InRange(log.Flushes, 1, 1023); // group commit: never one flush per record for a burst
        Assert.Equal(V(1, 500), log.Read(499));
    }

    [Fact]
    public async Task ALaterRecordOfThePageReplacesItsSlotAndIsReadBeforeItIsFlushed()
    {
        using DirtyLog log = DirtyLog.Open(LogPath, 16);
        await log.Record(3, V(5, 1));
        Task later = log.Record(3, V(5, 4));
        Assert.Equal(V(5, 4), log.Read(3)); // pending, or written: a new activation of this process sees it
        await later;
        Assert.Equal(V(5, 4), log.Read(3));
    }

    [Fact]
    public void ThePeriodStartOfAnActivationIsKnownUntilALaterOneRecords()
    {
        Assert.Equal(0, DirtyLog.PeriodStart(0, epoch: 5));          // never recorded: no period, nothing acknowledged
        Assert.Equal(0, DirtyLog.PeriodStart(V(4, 2), epoch: 5));    // an earlier activation's
        Assert.Equal(V(5, 3), DirtyLog.PeriodStart(V(5, 3), epoch: 5));
        Assert.Equal(-1, DirtyLog.PeriodStart(V(6, 1), epoch: 5));   // recorded over: nobody can say
    }

    [Fact]
    public async Task AnotherSizeOrAGarbageHeaderMakesANewLogWithAnotherId()
    {
        long id;
        using (DirtyLog log = DirtyLog.Open(LogPath, 16))
        {
            await log.Record(3, V(5, 1));
            id = log.Id;
        }
        using (DirtyLog resized = DirtyLog.Open(LogPath, 32))
        {
            Assert.NotEqual(id, resized.Id); // an intent naming the old log is not judged by this one
            Assert.Equal(0, resized.Read(3));
            id = resized.Id;
        }
        byte[] bytes = File.ReadAllBytes(LogPath);
        bytes[0] ^= 0xFF;
        File.WriteAllBytes(LogPath, bytes);
        using DirtyLog remade = DirtyLog.Open(LogPath, 32);
        Assert.NotEqual(id, remade.Id);
    }

    [Fact]
    public void APageOutsideTheLogIsATypedError()
    {
        using DirtyLog log = DirtyLog.Open(LogPath, 16);
        Assert.Equal(StorageError.OutOfRange, Assert.Throws<StorageException>(() => { _ = log.Record(16, 1); }).Error);
        Assert.Equal(StorageError.OutOfRange, Assert.Throws<StorageException>(() => log.Read(-1)).Error);
        Assert.Equal(0, log.Records);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
