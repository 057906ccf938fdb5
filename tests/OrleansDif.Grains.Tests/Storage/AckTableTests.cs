using OrleansDif.Grains;

namespace OrleansDif.Grains.Tests.Storage;

/// <summary>The acknowledged-version table, on files (no cluster).</summary>
public sealed class AckTableTests : IDisposable
{
    private static readonly Guid Boot = Guid.NewGuid(), Reboot = Guid.NewGuid();
    private readonly string _dir = Directory.CreateTempSubdirectory("acks-").FullName;
    private string TablePath => Path.Combine(_dir, "acks", "vol.acks");

    private static long V(long epoch, long count) => PageVersion.First(epoch) + count;

    [Fact]
    public void WhatOneOpenRecordsAnotherOpenOfTheSameBootReads()
    {
        using AckTable? first = AckTable.Open(TablePath, 16, Boot);
        Assert.NotNull(first);
        first.Record(3, V(5, 1));
        first.Record(3, V(5, 4));
        first.Record(3, V(5, 2)); // an earlier acknowledgement answered late: the entry keeps the highest
        using AckTable? second = AckTable.Open(TablePath, 16, Boot); // another silo of the machine, the first alive or dead
        Assert.Equal(first.Id, second!.Id);
        Assert.Equal(V(5, 4), second.Read(3));
        Assert.Equal(0, second.Read(4));
        first.Record(4, V(6, 1));
        Assert.Equal(V(6, 1), second.Read(4)); // one page cache: seen at once, no flush
    }

    [Fact]
    public void ANewActivationRecordsOverTheOldOnesEntry()
    {
        using AckTable table = AckTable.Open(TablePath, 16, Boot)!;
        table.Record(3, V(5, 9));
        table.Record(3, V(7, 1));
        Assert.Equal(V(7, 1), table.Read(3));
    }

    [Fact]
    public void WhatAnActivationAcknowledgedLastIsKnownOnlyUntilALaterOneRecords()
    {
        using AckTable table = AckTable.Open(TablePath, 16, Boot)!;
        Assert.Equal(0, table.LastAcknowledged(3, epoch: 5));  // never recorded: it acknowledged nothing
        table.Record(3, V(4, 2));
        Assert.Equal(0, table.LastAcknowledged(3, epoch: 5));  // an earlier activation's entry: nothing from 5
        table.Record(3, V(5, 3));
        Assert.Equal(V(5, 3), table.LastAcknowledged(3, epoch: 5));
        table.Record(3, V(6, 1));
        Assert.Equal(-1, table.LastAcknowledged(3, epoch: 5)); // recorded over: nobody can say
    }

    [Fact]
    public void AnotherBootOrAnotherSizeMakesANewEmptyTable()
    {
        long id;
        using (AckTable table = AckTable.Open(TablePath, 16, Boot)!)
        {
            table.Record(3, V(5, 1));
            id = table.Id;
        }
        using (AckTable rebooted = AckTable.Open(TablePath, 16, Reboot)!)
        {
            Assert.NotEqual(id, rebooted.Id); // a power loss took the page cache: intents naming the old id are not trusted
            Assert.Equal(0, rebooted.Read(3));
            id = rebooted.Id;
        }
        using AckTable resized = AckTable.Open(TablePath, 32, Reboot)!;
        Assert.NotEqual(id, resized.Id);
        Assert.Equal(32, resized.Pages);
    }

    [Fact]
    public void AGarbledHeaderMakesANewTable()
    {
        long id;
        using (AckTable table = AckTable.Open(TablePath, 16, Boot)!)
        {
            table.Record(3, V(5, 1));
            id = table.Id;
        }
        using (FileStream f = File.OpenWrite(TablePath))
        {
            f.Write(new byte[8]); // the magic gone
        }
        using AckTable again = AckTable.Open(TablePath, 16, Boot)!;
        Assert.NotEqual(id, again.Id);
        Assert.Equal(0, again.Read(3));
    }

    [Fact]
    public void WithoutAKnownBootThereIsNoTableAndAPageOutsideIsRefused()
    {
        Assert.Null(AckTable.Open(TablePath, 16, bootId: null));
        using AckTable table = AckTable.Open(TablePath, 16, Boot)!;
        Assert.Equal(StorageError.OutOfRange, Assert.Throws<StorageException>(() => table.Record(16, V(1, 1))).Error);
        Assert.Equal(StorageError.OutOfRange, Assert.Throws<StorageException>(() => table.Read(-1)).Error);
        Assert.Throws<ArgumentOutOfRangeException>(() => AckTable.Open(TablePath, 0, Boot));
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
