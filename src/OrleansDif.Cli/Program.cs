using System.CommandLine;
using OrleansDif.Cli;

return await CliApp.RunAsync(args);
