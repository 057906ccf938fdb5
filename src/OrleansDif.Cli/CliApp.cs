using System.CommandLine;

namespace OrleansDif.Cli;

/// <summary>The <c>orleansdif</c> command line. Exit codes: 0 success, 1 the check found a problem, 2 bad usage.</summary>
public static class CliApp
{
    public const int ExitOk = 0;
    public const int ExitFailed = 1;
    public const int ExitUsage = 2;

    public static RootCommand Build(TextWriter stdout, TextWriter stderr)
    {
        var root = new RootCommand("OrleansDif: stable pages and T10 DIF on an Orleans storage cluster");
        root.Subcommands.Add(ScrubCommand.Create(stdout, stderr));
        root.Subcommands.Add(BenchCommand.Create(stdout, stderr));
        root.Subcommands.Add(SiloCommands.CreateSilo(stdout, stderr));
        root.Subcommands.Add(SiloCommands.CreateCluster(stdout, stderr));
        root.Subcommands.Add(LoadCommand.Create(stdout, stderr));
        root.Subcommands.Add(NbdCommand.Create(stdout, stderr));
        root.Subcommands.Add(SimulateCommand.Create(stdout, stderr));
        root.Subcommands.Add(CertCommand.Create(stdout, stderr));
        return root;
    }

    public static Task<int> RunAsync(string[] args) => RunAsync(args, System.Console.Out, System.Console.Error);

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr)
    {
        RootCommand root = Build(stdout, stderr);
        ParseResult parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var error in parse.Errors)
            {
                await stderr.WriteLineAsync($"orleansdif: {error.Message}");
            }
            await stderr.WriteLineAsync("Run 'orleansdif --help' for usage.");
            return ExitUsage;
        }
        var config = new InvocationConfiguration { Output = stdout, Error = stderr };
        return await parse.InvokeAsync(config);
    }

    /// <summary>How to start a silo process of this very tool (the apphost next to this assembly, or dotnet + dll).</summary>
    public static OrleansDif.Cluster.SiloCommand ThisTool()
    {
        string dll = typeof(CliApp).Assembly.Location;
        string apphost = Path.Combine(Path.GetDirectoryName(dll)!, OperatingSystem.IsWindows() ? "orleansdif.exe" : "orleansdif");
        return File.Exists(apphost) ? new(apphost, []) : new("dotnet", [dll]);
    }

    /// <summary>A console for Spectre output that writes to <paramref name="writer"/>.</summary>
    public static Spectre.Console.IAnsiConsole AnsiConsoleFor(TextWriter writer)
    {
        var console = Spectre.Console.AnsiConsole.Create(new Spectre.Console.AnsiConsoleSettings
        {
            Out = new Spectre.Console.AnsiConsoleOutput(writer),
        });
        if (!console.Profile.Capabilities.Interactive || System.Console.IsOutputRedirected)
        {
            console.Profile.Width = 160; // logs and pipes: no terminal width to wrap tables at
        }
        return console;
    }

    /// <summary>Parses a number written in decimal or as 0x-prefixed hexadecimal.</summary>
    public static bool TryParseNumber(string? text, out ulong value)
    {
        value = 0;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }
        text = text.Trim();
        return text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? ulong.TryParse(text.AsSpan(2), System.Globalization.NumberStyles.HexNumber, null, out value)
            : ulong.TryParse(text, out value);
    }
}
