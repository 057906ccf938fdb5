namespace OrleansDif.Cli.Tests;

/// <summary>
/// The test classes that start clusters of real silo processes run one at a time: three clusters at once on two
/// cores made calls time out and chaos runs take minutes, which is how a machine slower than this one fails.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class RealSilos
{
    public const string Name = "real silo processes";
}
