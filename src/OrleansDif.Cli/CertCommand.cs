using System.CommandLine;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using OrleansDif.Cluster;

namespace OrleansDif.Cli;

/// <summary><c>orleansdif cert</c>: a self-signed development certificate for a cluster's mutual TLS.</summary>
internal static class CertCommand
{
    public static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var output = new Option<string>("--out") { Description = "PKCS#12 file to write (the config's tls.certificate)", Required = true };
        var password = new Option<string?>("--password") { Description = "Password of the file (default: none)" };
        var subject = new Option<string>("--subject") { Description = "Subject name", DefaultValueFactory = _ => "CN=orleansdif-cluster" };
        var days = new Option<int>("--days") { Description = "Validity in days (1..3650)", DefaultValueFactory = _ => 365 };
        var force = new Option<bool>("--force") { Description = "Overwrite an existing file" };
        var command = new Command("cert", "Make a self-signed development certificate for a cluster's mutual TLS (ECDSA P-256, server and client authentication, localhost and 127.0.0.1)")
        {
            output, password, subject, days, force,
        };
        command.SetAction(parse =>
        {
            string path = parse.GetValue(output)!;
            if (File.Exists(path) && !parse.GetValue(force))
            {
                stderr.WriteLine($"orleansdif cert: '{path}' exists (--force to overwrite it)");
                return CliApp.ExitUsage;
            }
            try
            {
                using X509Certificate2 cert = ClusterTls.CreateDevelopmentCertificate(path, parse.GetValue(subject)!, parse.GetValue(days), parse.GetValue(password));
                stdout.WriteLine($"{path}: '{cert.Subject}', valid until {cert.NotAfter:yyyy-MM-dd}, SHA-256 {Convert.ToHexString(cert.GetCertHash(HashAlgorithmName.SHA256))}");
                stdout.WriteLine("Every silo and client of the cluster presents this certificate and accepts only it: copy it to every host,");
                stdout.WriteLine("and name it in the cluster config: \"tls\": { \"mode\": \"required\", \"certificate\": \"<its path, relative to the config's folder>\" }");
                return CliApp.ExitOk;
            }
            catch (ArgumentException e)
            {
                stderr.WriteLine($"orleansdif cert: {e.Message.Split(Environment.NewLine)[0]}");
                return CliApp.ExitUsage;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                stderr.WriteLine($"orleansdif cert: cannot write '{path}': {e.Message}");
                return CliApp.ExitUsage;
            }
        });
        return command;
    }
}
