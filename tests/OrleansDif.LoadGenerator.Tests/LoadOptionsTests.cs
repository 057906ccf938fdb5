namespace OrleansDif.LoadGenerator.Tests;

public class LoadOptionsTests
{
    [Theory]
    [InlineData("write=70,store=20,read=10", 70, 20, 10)]
    [InlineData("write=100", 100, 0, 0)]
    [InlineData(" read=50 , write=50 ", 50, 0, 50)]
    public void MixParses(string text, int write, int store, int read) =>
        Assert.Equal(new OperationMix(write, store, read), OperationMix.Parse(text));

    [Theory]
    [InlineData("write=70,store=20")]
    [InlineData("write=70,store=20,read=10,read=0")]
    [InlineData("write=seventy,store=30")]
    [InlineData("write=-10,store=110")]
    [InlineData("trim=100")]
    [InlineData("")]
    public void BadMixIsAUsageError(string text) => Assert.Throws<UsageException>(() => OperationMix.Parse(text));

    [Theory]
    [InlineData("20s", 20)]
    [InlineData("2m", 120)]
    [InlineData("500ms", 0.5)]
    [InlineData("1h", 3600)]
    [InlineData("7", 7)]
    [InlineData("1.5s", 1.5)]
    public void DurationsParse(string text, double seconds) =>
        Assert.Equal(TimeSpan.FromSeconds(seconds), LoadOptions.ParseDuration(text));

    [Theory]
    [InlineData("")]
    [InlineData("s")]
    [InlineData("-3s")]
    [InlineData("0s")]
    [InlineData("ten seconds")]
    public void BadDurationsAreUsageErrors(string text) => Assert.Throws<UsageException>(() => LoadOptions.ParseDuration(text));

    [Fact]
    public void SizeRangesParseAndValidate()
    {
        Assert.Equal((512, 4096), LoadOptions.ParseSizeRange("512-4096"));
        Assert.Equal((100, 100), LoadOptions.ParseSizeRange("100"));
        Assert.Throws<UsageException>(() => LoadOptions.ParseSizeRange("a-b"));
        Assert.Throws<UsageException>(() => new LoadOptions { WriteSizeMin = 10, WriteSizeMax = 5 }.Validate());
        Assert.Throws<UsageException>(() => new LoadOptions { WriteSizeMax = 4097 }.Validate());
        Assert.Throws<UsageException>(() => new LoadOptions { Writers = 0 }.Validate());
        Assert.Throws<UsageException>(() => new LoadOptions { Duration = TimeSpan.Zero }.Validate());
        new LoadOptions().Validate();
    }

    [Fact]
    public void PoliciesParse()
    {
        Assert.Equal(WritebackPolicy.Bounce, LoadOptions.ParsePolicy("Bounce"));
        Assert.Throws<UsageException>(() => LoadOptions.ParsePolicy("sometimes"));
    }

    [Fact]
    public void RoundsAndWarmupAreBounded()
    {
        Assert.Throws<UsageException>(() => new LoadOptions { Rounds = 0 }.Validate());
        Assert.Throws<UsageException>(() => new LoadOptions { Rounds = 3, KillSilos = true, Local = true }.Validate());
        Assert.Throws<UsageException>(() => new LoadOptions { Warmup = TimeSpan.FromHours(2) }.Validate());
        Assert.Equal(TimeSpan.FromSeconds(12), new LoadOptions { Compare = true }.EffectiveWarmup);
        Assert.Equal(TimeSpan.Zero, new LoadOptions().EffectiveWarmup);
        new LoadOptions { Compare = true, Rounds = 3 }.Validate();
        Assert.Equal(3, new LoadOptions { Compare = true }.EffectiveRounds);
        Assert.Equal(1, new LoadOptions().EffectiveRounds);
    }

    [Fact]
    public void ChaosPacingParsesAsTimeOrWrites()
    {
        Assert.Equal(ChaosKind.KillSilo, LoadOptions.ParseChaos("kill-silo"));
        Assert.Equal(ChaosKind.PowerLoss, LoadOptions.ParseChaos(" power-loss "));
        Assert.Contains("power-loss", Assert.Throws<UsageException>(() => LoadOptions.ParseChaos("kill-rack")).Message);
        Assert.Equal((TimeSpan.FromSeconds(10), (int?)null), LoadOptions.ParseChaosEvery("10s"));
        Assert.Equal(((TimeSpan?)null, (int?)500), LoadOptions.ParseChaosEvery("500writes"));
        Assert.Throws<UsageException>(() => LoadOptions.ParseChaosEvery("0writes"));
        Assert.Throws<UsageException>(() => LoadOptions.ParseChaosEvery("-5writes"));
        Assert.Throws<UsageException>(() => new LoadOptions { ChaosKills = 3 }.Validate());
        // Kills go with media bit rot only (it hits pages made durable before the run), never with command or memory faults.
        new LoadOptions { Local = true, KillSilos = true, Inject = [FaultKind.MediaBitrot] }.Validate();
        Assert.Throws<UsageException>(() => new LoadOptions { Local = true, KillSilos = true, Inject = [FaultKind.MediaBitrot, FaultKind.LostWrite] }.Validate());
    }

    [Fact]
    public void FaultKindsParse()
    {
        Assert.Equal([FaultKind.LostWrite, FaultKind.PageBitflip], LoadOptions.ParseInject("lost-write, page-bitflip,lost-write"));
        Assert.Equal(6, LoadOptions.ParseInject("all").Count);
        UsageException e = Assert.Throws<UsageException>(() => LoadOptions.ParseInject("cosmic-ray"));
        Assert.Contains("cosmic-ray", e.Message);
        Assert.Throws<UsageException>(() => LoadOptions.ParseInject(" , "));
        Assert.Throws<UsageException>(() => new LoadOptions { InjectEvery = 0 }.Validate());
        Assert.Throws<UsageException>(() => new LoadOptions { Inject = [FaultKind.TornWrite], Workload = Workload.Ping }.Validate());
    }
}
