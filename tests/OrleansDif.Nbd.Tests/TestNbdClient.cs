using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace OrleansDif.Nbd.Tests;

/// <summary>
/// A minimal NBD client for protocol tests: the fixed newstyle handshake, then requests sent and replies read
/// separately, so that tests can keep many in flight and see the order replies come back in.
/// </summary>
internal sealed class TestNbdClient : IAsyncDisposable
{
    private readonly TcpClient _tcp = new() { NoDelay = true };
    private NetworkStream _stream = null!;
    private ulong _nextCookie = 1;
    private readonly Dictionary<ulong, NbdRequest> _sent = [];

    public long Size { get; private set; }
    public TransmissionFlags Flags { get; private set; }

    public static async Task<TestNbdClient> ConnectAsync(IPEndPoint server)
    {
        var c = new TestNbdClient();
        await c._tcp.ConnectAsync(server);
        c._stream = c._tcp.GetStream();
        byte[] hello = await c.ReadAsync(18);
        Assert.Equal(NbdMagic.Init, BinaryPrimitives.ReadUInt64BigEndian(hello));
        Assert.Equal(NbdMagic.Option, BinaryPrimitives.ReadUInt64BigEndian(hello.AsSpan(8)));
        await c.WriteAsync(U32((uint)(ClientFlags.FixedNewstyle | ClientFlags.NoZeroes)));
        return c;
    }

    /// <summary>Connects and selects <paramref name="export"/> with GO.</summary>
    public static async Task<TestNbdClient> OpenAsync(IPEndPoint server, string export)
    {
        TestNbdClient c = await ConnectAsync(server);
        var (type, _) = await c.GoAsync(export);
        Assert.Equal(NbdOptionReply.Ack, type);
        return c;
    }

    public async Task SendOptionAsync(NbdOption option, byte[] data)
    {
        byte[] header = new byte[16];
        BinaryPrimitives.WriteUInt64BigEndian(header, NbdMagic.Option);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(8), (uint)option);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(12), (uint)data.Length);
        await WriteAsync([.. header, .. data]);
    }

    public async Task<(NbdOptionReply Type, byte[] Data)> ReadOptionReplyAsync(NbdOption option)
    {
        byte[] header = await ReadAsync(20);
        Assert.Equal(NbdMagic.OptionReply, BinaryPrimitives.ReadUInt64BigEndian(header));
        Assert.Equal((uint)option, BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(8)));
        var type = (NbdOptionReply)BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12));
        int length = (int)BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(16));
        return (type, await ReadAsync(length));
    }

    /// <summary>GO with <paramref name="export"/>: the final reply (ACK or an error), the export's info kept.</summary>
    public async Task<(NbdOptionReply Type, byte[] Data)> GoAsync(string export)
    {
        byte[] name = Encoding.UTF8.GetBytes(export);
        byte[] data = [.. U32((uint)name.Length), .. name, 0, 1, .. U16((ushort)NbdInfo.BlockSize)];
        await SendOptionAsync(NbdOption.Go, data);
        while (true)
        {
            var (type, reply) = await ReadOptionReplyAsync(NbdOption.Go);
            if (type == NbdOptionReply.Info && BinaryPrimitives.ReadUInt16BigEndian(reply) == (ushort)NbdInfo.Export)
            {
                Size = (long)BinaryPrimitives.ReadUInt64BigEndian(reply.AsSpan(2));
                Flags = (TransmissionFlags)BinaryPrimitives.ReadUInt16BigEndian(reply.AsSpan(10));
            }
            if (type != NbdOptionReply.Info)
            {
                return (type, reply);
            }
        }
    }

    /// <summary>Sends a request (a write's payload with it); its cookie.</summary>
    public async Task<ulong> SendAsync(NbdCommand command, long offset, uint length, byte[]? payload = null, CommandFlags flags = 0)
    {
        var request = new NbdRequest(flags, command, _nextCookie++, (ulong)offset, length);
        byte[] header = new byte[NbdLimits.RequestSize];
        request.Write(header);
        await WriteAsync(payload is null ? header : [.. header, .. payload]);
        _sent[request.Cookie] = request;
        return request.Cookie;
    }

    /// <summary>The next reply: its cookie, error, and a read's data.</summary>
    public async Task<(ulong Cookie, NbdError Error, byte[] Data)> ReceiveAsync()
    {
        byte[] header = await ReadAsync(NbdLimits.SimpleReplySize);
        Assert.Equal(NbdMagic.SimpleReply, BinaryPrimitives.ReadUInt32BigEndian(header));
        var error = (NbdError)BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(4));
        ulong cookie = BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(8));
        Assert.True(_sent.Remove(cookie, out NbdRequest request), $"a reply to cookie {cookie}, which is not in flight");
        byte[] data = request.Command == NbdCommand.Read && error == NbdError.None ? await ReadAsync((int)request.Length) : [];
        return (cookie, error, data);
    }

    public async Task<(NbdError Error, byte[] Data)> CallAsync(NbdCommand command, long offset, uint length, byte[]? payload = null, CommandFlags flags = 0)
    {
        ulong cookie = await SendAsync(command, offset, length, payload, flags);
        var (got, error, data) = await ReceiveAsync();
        Assert.Equal(cookie, got);
        return (error, data);
    }

    public Task WriteAsync(byte[] bytes) => _stream.WriteAsync(bytes).AsTask();

    /// <summary>True when the server closed the connection (reads end).</summary>
    public async Task<bool> ClosedByServerAsync()
    {
        byte[] one = new byte[1];
        try
        {
            while (await _stream.ReadAsync(one) > 0)
            {
            }
            return true;
        }
        catch (IOException)
        {
            return true;
        }
    }

    public async Task<byte[]> ReadAsync(int count)
    {
        byte[] buffer = new byte[count];
        await _stream.ReadExactlyAsync(buffer);
        return buffer;
    }

    public static byte[] U32(uint v)
    {
        byte[] b = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, v);
        return b;
    }

    public static byte[] U16(ushort v)
    {
        byte[] b = new byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(b, v);
        return b;
    }

    public ValueTask DisposeAsync()
    {
        _tcp.Dispose();
        return ValueTask.CompletedTask;
    }
}
