namespace OrleansDif.Cli.Tests;

public class LoadOptionsCommandTests
{
    [Theory]
    [InlineData("--mix", "write=50,store=20")]
    [InlineData("--mix", "write=70,flush=30")]
    [InlineData("--duration", "soon")]
    [InlineData("--duration", "-5s")]
    [InlineData("--policy", "wobbly")]
    [InlineData("--write-size", "100-50")]
    [InlineData("--write-size", "0-4096")]
    [InlineData("--write-size", "512-8192")]
    [InlineData("--writers", "0")]
    [InlineData("--pages", "0")]
    [InlineData("--workload", "chaos")]
    [InlineData("--fsync-every", "-1")]
    [InlineData("--config", "no/such/config.json")]
    public async Task BadOptionsExitTwoWithAMessage(string option, string value)
    {
        var (exit, stdout, stderr) = await CliRunner.RunAsync("load", option, value);
        Assert.Equal(2, exit);
        Assert.False(string.IsNullOrWhiteSpace(stderr));
        Assert.DoesNotContain("   at ", stderr);
        Assert.Empty(stdout);
    }

    [Fact]
    public async Task MalformedConfigIsUsageErrorNamingTheProblem()
    {
        string dir = Directory.CreateTempSubdirectory("orleansdif-cfg-").FullName;
        try
        {
            string path = Path.Combine(dir, "c.json");
            File.WriteAllText(path, "{ \"silos\": [ { \"siloPort\": 70000, \"gatewayPort\": 30000 } ] }");
            var (exit, _, stderr) = await CliRunner.RunAsync("load", "--config", path);
            Assert.Equal(2, exit);
            Assert.Contains("silos[0].siloPort", stderr);
            File.WriteAllText(path, "{ \"silos\": [ ");
            (exit, _, stderr) = await CliRunner.RunAsync("silo", "--config", path, "--silo", "0");
            Assert.Equal(2, exit);
            Assert.Contains("not valid JSON", stderr);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
