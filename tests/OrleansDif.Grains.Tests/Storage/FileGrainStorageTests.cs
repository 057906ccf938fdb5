using Orleans.Storage;
using OrleansDif.Grains;

namespace OrleansDif.Grains.Tests.Storage;

/// <summary>The file store of grain state: crash-safe replacement, torn and garbage files reported, never bricking a grain.</summary>
public sealed class FileGrainStorageTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("orleansdif-state-").FullName;
    private readonly GrainId _grain = GrainId.Create("difpage", "vol/7");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string FileOf() => Path.Combine(_dir, "state", "intent", "difpage", "vol", "7.json");

    [Fact]
    public async Task StateRoundTripsAndLeavesNoTemporaryFile()
    {
        var store = new FileGrainStorage(_dir);
        var state = new GrainState<PageIntentState> { State = new PageIntentState { Epoch = 42, Flusher = 7 } };
        await store.WriteStateAsync("intent", _grain, state);
        await store.WriteStateAsync("intent", _grain, state);
        var read = new GrainState<PageIntentState>();
        await store.ReadStateAsync("intent", _grain, read);
        Assert.True(read.RecordExists);
        Assert.Equal((42L, 7L, "2"), (read.State!.Epoch, read.State!.Flusher, read.ETag));
        Assert.Null(read.State!.CorruptionReason);
        Assert.Equal([FileOf()], Directory.GetFiles(Path.GetDirectoryName(FileOf())!));
    }

    [Fact]
    public async Task AStaleWriterIsRefused()
    {
        var store = new FileGrainStorage(_dir);
        var a = new GrainState<PageIntentState> { State = new PageIntentState { Epoch = 1 } };
        var b = new GrainState<PageIntentState> { State = new PageIntentState { Epoch = 2 } };
        await store.WriteStateAsync("intent", _grain, a);
        await Assert.ThrowsAsync<InconsistentStateException>(() => store.WriteStateAsync("intent", _grain, b));
        var read = new GrainState<PageIntentState>();
        await store.ReadStateAsync("intent", _grain, read);
        Assert.Equal(1, read.State!.Epoch);
    }

    [Theory]
    [InlineData("torn")]
    [InlineData("garbage")]
    [InlineData("checksum")]
    public async Task ATornOrGarbageFileIsReportedMovedAsideAndTheGrainGoesOn(string damage)
    {
        var store = new FileGrainStorage(_dir);
        await store.WriteStateAsync("intent", _grain, new GrainState<PageIntentState> { State = new PageIntentState { Epoch = 99, Flusher = 5 } });
        string path = FileOf();
        byte[] bytes = File.ReadAllBytes(path);
        byte[] damaged = damage switch
        {
            "torn" => bytes[..(bytes.Length / 2)],
            "garbage" => [0x00, 0xFF, 0x13, 0x37],
            _ => System.Text.Encoding.UTF8.GetBytes(System.Text.Encoding.UTF8.GetString(bytes).Replace("99", "98")),
        };
        File.WriteAllBytes(path, damaged);

        var read = new GrainState<PageIntentState>();
        await store.ReadStateAsync("intent", _grain, read);   // no exception: the grain is not bricked
        Assert.False(read.RecordExists);
        Assert.NotNull(read.State!.CorruptionReason);
        Assert.Contains("vol/7", read.State!.CorruptionReason);  // names the grain
        Assert.False(File.Exists(path));
        Assert.Equal(damaged, File.ReadAllBytes(path + ".corrupt"));  // kept for inspection
        // The grain can write its state again.
        await store.WriteStateAsync("intent", _grain, new GrainState<PageIntentState> { State = new PageIntentState { Epoch = 100 } });
        var again = new GrainState<PageIntentState>();
        await store.ReadStateAsync("intent", _grain, again);
        Assert.Equal(100, again.State!.Epoch);
    }

    [Fact]
    public async Task ListingNamesUnreadableFilesAsSuch()
    {
        var store = new FileGrainStorage(_dir);
        await store.WriteStateAsync("intent", _grain, new GrainState<PageIntentState> { State = new PageIntentState { Epoch = 3 } });
        await store.WriteStateAsync("intent", GrainId.Create("difpage", "vol/8"), new GrainState<PageIntentState> { State = new PageIntentState { Epoch = 4 } });
        File.WriteAllText(Path.Combine(Path.GetDirectoryName(FileOf())!, "8.json"), "{\"ETag\":1,");
        var listed = FileGrainStorage.List<PageIntentState>(_dir, "intent", "difpage", "vol").OrderBy(x => x.Name).ToList();
        Assert.Equal(["7", "8"], listed.Select(x => x.Name));
        Assert.Equal(3, listed[0].State.Epoch);
        Assert.NotNull(listed[1].State.CorruptionReason);
    }
}
