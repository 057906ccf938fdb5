using System.Text.Json;

namespace OrleansDif.Cli.Tests;

public class BenchCommandTests
{
    [Fact]
    public async Task BenchCrcJsonHasEveryKey()
    {
        // Shape only: figures are measured by the command itself, never asserted in tests.
        var (exit, stdout, _) = await CliRunner.RunAsync("bench", "crc", "--json", "--rounds", "1");
        Assert.Equal(0, exit);
        using JsonDocument doc = JsonDocument.Parse(stdout);
        foreach (string key in new[] { "guard4k", "guard512", "copyGuard4k", "copy4k", "sioh4k" })
        {
            Assert.True(doc.RootElement.GetProperty(key).GetDouble() > 0, key);
        }
        foreach (string key in new[] { "isal4k", "isalCopy4k" })
        {
            JsonElement v = doc.RootElement.GetProperty(key);
            Assert.True(v.ValueKind == JsonValueKind.Null || v.GetDouble() > 0, key);
        }
    }

    [Theory]
    [InlineData("nbd", "--bind", "not-an-address")]
    [InlineData("nbd", "--port", "70000")]
    [InlineData("nbd", "--config", "does-not-exist.json")]
    public async Task NbdBadInputIsAUsageErrorNamingIt(string command, string option, string value)
    {
        var (exit, _, stderr) = await CliRunner.RunAsync(command, option, value);
        Assert.Equal(2, exit);
        Assert.Contains("orleansdif nbd", stderr);
    }

    [Fact]
    public async Task NbdInsideASiloNeedsAPort()
    {
        var (exit, _, stderr) = await CliRunner.RunAsync("nbd", "--local", "--port", "0");
        Assert.Equal(2, exit);
        Assert.Contains("--port 0", stderr);
    }

    [Fact]
    public async Task BenchNbdBadRoundsIsAUsageError()
    {
        if (OrleansDif.Cli.NbdBenchmark.FindTool("fio") is null || OrleansDif.Cli.NbdBenchmark.FindTool("nbdkit") is null)
        {
            var (skipExit, skipOut, _) = await CliRunner.RunAsync("bench", "nbd", "--rounds", "0");
            Assert.Equal(0, skipExit); // without the tools the command says so and measures nothing
            Assert.Contains("skipped", skipOut);
            return;
        }
        var (exit, _, stderr) = await CliRunner.RunAsync("bench", "nbd", "--rounds", "0");
        Assert.Equal(2, exit);
        Assert.Contains("--rounds", stderr);
    }

    [Fact]
    public void BenchNbdJobsSelectsByNameAndRefusesUnknownOnes()
    {
        Assert.Equal(OrleansDif.Cli.NbdBenchmark.Jobs, OrleansDif.Cli.NbdBenchmark.SelectJobs(null));
        var picked = OrleansDif.Cli.NbdBenchmark.SelectJobs("randread, randwrite-fsync32,randread");
        Assert.Equal(["randread", "randwrite-fsync32"], picked.Select(j => j.Name));
        var e = Assert.Throws<OrleansDif.LoadGenerator.UsageException>(() => OrleansDif.Cli.NbdBenchmark.SelectJobs("randtrim"));
        Assert.Contains("randtrim", e.Message);
    }

    [Fact]
    public async Task UnknownCommandIsUsageError()
    {
        var (exit, _, stderr) = await CliRunner.RunAsync("frobnicate");
        Assert.Equal(2, exit);
        Assert.NotEmpty(stderr);
    }
}
