using Microsoft.Extensions.Logging;
using OrleansDif.Cluster;

namespace OrleansDif.Cli.Tests;

/// <summary>The silos' log level from the environment (how a --local run's silos log each loss judgment).</summary>
public class SiloLogLevelTests
{
    [Theory]
    [InlineData(null, LogLevel.Warning)]
    [InlineData("", LogLevel.Warning)]
    [InlineData("Information", LogLevel.Information)]
    [InlineData("debug", LogLevel.Debug)]
    [InlineData("ERROR", LogLevel.Error)]
    public void ALevelIsTakenByNameInAnyCase(string? value, LogLevel expected) =>
        Assert.Equal(expected, SiloCommands.ParseLevel(value));

    [Theory]
    [InlineData("loud")]
    [InlineData("2")]
    [InlineData("99")]
    public void AnythingElseIsAConfigErrorNamingTheVariable(string value)
    {
        var e = Assert.Throws<ConfigException>(() => SiloCommands.ParseLevel(value));
        Assert.Contains(SiloCommands.LogLevelVariable, e.Message);
        Assert.Contains("Information", e.Message);
    }
}
