using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Orleans.Connections.Security;

namespace OrleansDif.Cluster;

/// <summary>The <c>tls</c> section of a cluster config.</summary>
public sealed class TlsSection
{
    /// <summary>"off" (plain TCP, the default) or "required": every silo-to-silo and client-to-gateway connection is mutual TLS.</summary>
    public string Mode { get; set; } = "off";

    /// <summary>PKCS#12 file (certificate and private key) every silo and client of the cluster presents; relative to the config's folder.</summary>
    public string Certificate { get; set; } = "";

    /// <summary>Its password (empty: none). The environment variable ORLEANSDIF_tls__password overrides it.</summary>
    public string Password { get; set; } = "";

    public bool Required => Mode == "required";
}

/// <summary>
/// Mutual TLS between the silos and clients of one cluster: every member presents the cluster's certificate, and a
/// connection is accepted only from a member that presents the same one (compared by SHA-256 thumbprint, so a
/// self-signed certificate works, and a certificate that merely chains to a public root does not). A refused
/// connection is reported on the refusing side through <c>refused</c>, naming the certificate it was offered.
/// </summary>
public static class ClusterTls
{
    /// <summary>Loads the cluster certificate of <paramref name="config"/>; a clear <see cref="ConfigException"/> when it cannot.</summary>
    public static X509Certificate2 LoadCertificate(ClusterConfig config)
    {
        string path = Path.GetFullPath(Path.Combine(config.BaseDirectory, config.Tls.Certificate));
        if (!File.Exists(path))
        {
            throw new ConfigException($"cluster config field 'tls.certificate': '{path}' does not exist (make one with: orleansdif cert --out {config.Tls.Certificate})");
        }
        X509Certificate2 certificate;
        try
        {
            certificate = X509CertificateLoader.LoadPkcs12FromFile(path, config.Tls.Password.Length == 0 ? null : config.Tls.Password,
                X509KeyStorageFlags.Exportable);
        }
        catch (CryptographicException e)
        {
            throw new ConfigException($"cluster config field 'tls.certificate': '{path}' is not a PKCS#12 certificate this password opens ({e.Message})");
        }
        if (!certificate.HasPrivateKey)
        {
            certificate.Dispose();
            throw new ConfigException($"cluster config field 'tls.certificate': '{path}' has no private key");
        }
        return certificate;
    }

    /// <summary>Whether <paramref name="remote"/> is the cluster's certificate <paramref name="own"/>.</summary>
    public static bool Trusted(X509Certificate2? remote, X509Certificate2 own) =>
        remote is not null && remote.GetCertHash(HashAlgorithmName.SHA256).AsSpan().SequenceEqual(own.GetCertHash(HashAlgorithmName.SHA256));

    /// <summary>The TLS options of a silo or client of the cluster whose certificate is <paramref name="own"/>.</summary>
    public static void Configure(TlsOptions options, X509Certificate2 own, Action<string>? refused = null)
    {
        options.LocalCertificate = own;
        options.RemoteCertificateMode = RemoteCertificateMode.RequireCertificate;
        options.ClientCertificateMode = RemoteCertificateMode.RequireCertificate;
        options.HandshakeTimeout = TimeSpan.FromSeconds(10);
        options.RemoteCertificateValidation = (certificate, _, errors) =>
        {
            if (Trusted(certificate, own))
            {
                return true; // the chain of a self-signed cluster certificate does not validate; the thumbprint does
            }
            refused?.Invoke($"TLS: refused a connection presenting {Describe(certificate)}: not this cluster's certificate ({Describe(own)}){(errors == SslPolicyErrors.None ? "" : $"; {errors}")}");
            return false;
        };
        // Every member presents the same certificate: its own subject is the name to ask the other side for.
        string host = own.GetNameInfo(X509NameType.SimpleName, forIssuer: false);
        options.OnAuthenticateAsClient = (_, client) => client.TargetHost = host;
    }

    private static string Describe(X509Certificate2? c) => c is null
        ? "no certificate"
        : $"'{c.Subject}' (SHA-256 {Convert.ToHexString(c.GetCertHash(HashAlgorithmName.SHA256))[..16]}...)";

    /// <summary>
    /// A self-signed development certificate for a cluster: ECDSA P-256, usable for server and client authentication,
    /// for 127.0.0.1 and localhost, valid <paramref name="days"/> days; written as PKCS#12 to <paramref name="path"/>.
    /// </summary>
    public static X509Certificate2 CreateDevelopmentCertificate(string path, string subject, int days, string? password)
    {
        if (days is < 1 or > 3650)
        {
            throw new ArgumentOutOfRangeException(nameof(days), days, "days must be 1..3650");
        }
        X500DistinguishedName name;
        try
        {
            name = new X500DistinguishedName(subject.StartsWith("CN=", StringComparison.OrdinalIgnoreCase) ? subject : "CN=" + subject);
        }
        catch (CryptographicException e)
        {
            throw new ArgumentException($"'{subject}' is not a distinguished name: {e.Message}", nameof(subject));
        }
        using ECDsa key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(name, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false)); // server and client authentication
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("localhost");
        san.AddIpAddress(System.Net.IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        DateTimeOffset now = DateTimeOffset.UtcNow;
        using X509Certificate2 created = request.CreateSelfSigned(now.AddMinutes(-5), now.AddDays(days));
        byte[] pfx = created.Export(X509ContentType.Pkcs12, password);
        string? folder = Path.GetDirectoryName(Path.GetFullPath(path));
        if (folder is not null)
        {
            Directory.CreateDirectory(folder);
        }
        File.WriteAllBytes(path, pfx);
        return X509CertificateLoader.LoadPkcs12(pfx, password, X509KeyStorageFlags.Exportable);
    }
}
