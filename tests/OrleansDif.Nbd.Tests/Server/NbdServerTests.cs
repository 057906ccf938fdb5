using System.Net;
using System.Text;

namespace OrleansDif.Nbd.Tests.Server;

/// <summary>The server over an in-memory device: handshake, requests in flight, bad input, broken clients.</summary>
public sealed class NbdServerTests : IAsyncLifetime
{
    private const long Size = 1 << 20;
    private readonly GatedDevice _device = new(new MemoryDevice(Size));
    private NbdServer _server = null!;

    private sealed class Catalog(IBlockDevice device) : IExportCatalog
    {
        public IReadOnlyList<string> Names { get; } = ["disk", "other"];
        public Task<IBlockDevice?> OpenAsync(string name, CancellationToken ct) =>
            Task.FromResult(Names.Contains(name) ? device : null);
    }

    /// <summary>Reads at <see cref="GatedOffset"/> wait until the gate opens (to hold one request in flight).</summary>
    private sealed class GatedDevice(MemoryDevice inner) : IBlockDevice
    {
        public const long GatedOffset = 8192;
        public TaskCompletionSource Gate { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public TaskCompletionSource Reached { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public MemoryDevice Inner => inner;
        public long Size => inner.Size;
        public bool FlushCoversAllConnections => true;

        public async Task<byte[]> ReadAsync(long offset, int length, CancellationToken ct)
        {
            if (offset == GatedOffset)
            {
                Reached.TrySetResult();
                await Gate.Task;
            }
            return await inner.ReadAsync(offset, length, ct);
        }

        public Task WriteAsync(long offset, byte[] data, bool fua, CancellationToken ct) => inner.WriteAsync(offset, data, fua, ct);
        public Task ZeroAsync(long offset, long length, bool fua, CancellationToken ct) => inner.ZeroAsync(offset, length, fua, ct);
        public Task FlushAsync(CancellationToken ct) => inner.FlushAsync(ct);
    }

    public Task InitializeAsync()
    {
        _server = new NbdServer(new Catalog(_device), new IPEndPoint(IPAddress.Loopback, 0));
        _server.Start();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private static byte[] Pattern(int seed, int length)
    {
        byte[] b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }

    [Fact]
    public async Task GoGivesSizeFlagsAndBlockSizes()
    {
        await using TestNbdClient c = await TestNbdClient.ConnectAsync(_server.Endpoint);
        byte[] name = Encoding.UTF8.GetBytes("disk");
        await c.SendOptionAsync(NbdOption.Info, [.. TestNbdClient.U32((uint)name.Length), .. name, 0, 0]);
        var infos = new List<byte[]>();
        (NbdOptionReply type, byte[] data) reply;
        while ((reply = await c.ReadOptionReplyAsync(NbdOption.Info)).type == NbdOptionReply.Info)
        {
            infos.Add(reply.data);
        }
        Assert.Equal(NbdOptionReply.Ack, reply.type);
        byte[] export = Assert.Single(infos, i => i[1] == (byte)NbdInfo.Export);
        Assert.Equal((ulong)Size, System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(export.AsSpan(2)));
        byte[] sizes = Assert.Single(infos, i => i[1] == (byte)NbdInfo.BlockSize);
        Assert.Equal(NbdLimits.MinimumBlock, System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(sizes.AsSpan(2)));
        Assert.Equal(NbdLimits.PreferredBlock, System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(sizes.AsSpan(6)));
        Assert.Equal(NbdLimits.MaximumPayload, System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(sizes.AsSpan(10)));

        // INFO leaves the client in negotiation: GO on the same connection.
        var (go, _) = await c.GoAsync("disk");
        Assert.Equal(NbdOptionReply.Ack, go);
        Assert.Equal(Size, c.Size);
        Assert.True(c.Flags.HasFlag(TransmissionFlags.SendFlush | TransmissionFlags.SendFua | TransmissionFlags.SendWriteZeroes | TransmissionFlags.SendTrim | TransmissionFlags.CanMultiConn));
        Assert.False(c.Flags.HasFlag(TransmissionFlags.ReadOnly));
    }

    [Fact]
    public async Task ListNamesEveryExportAndAnUnknownOneIsRefusedWithoutClosing()
    {
        await using TestNbdClient c = await TestNbdClient.ConnectAsync(_server.Endpoint);
        await c.SendOptionAsync(NbdOption.List, []);
        var names = new List<string>();
        (NbdOptionReply type, byte[] data) reply;
        while ((reply = await c.ReadOptionReplyAsync(NbdOption.List)).type == NbdOptionReply.Server)
        {
            names.Add(Encoding.UTF8.GetString(reply.data, 4, reply.data.Length - 4));
        }
        Assert.Equal(NbdOptionReply.Ack, reply.type);
        Assert.Equal(["disk", "other"], names);

        var (unknown, message) = await c.GoAsync("nope");
        Assert.Equal(NbdOptionReply.ErrUnknown, unknown);
        Assert.Contains("nope", Encoding.UTF8.GetString(message));
        await c.SendOptionAsync(NbdOption.StructuredReply, []);
        Assert.Equal(NbdOptionReply.ErrUnsupported, (await c.ReadOptionReplyAsync(NbdOption.StructuredReply)).Type);
        Assert.Equal(NbdOptionReply.Ack, (await c.GoAsync("disk")).Type);
        Assert.Equal(NbdError.None, (await c.CallAsync(NbdCommand.Read, 0, 512)).Error);
    }

    [Fact]
    public async Task WritesReadBackAndNeverWrittenSectorsReadAsZeros()
    {
        await using TestNbdClient c = await TestNbdClient.OpenAsync(_server.Endpoint, "disk");
        byte[] data = Pattern(1, 12288);
        Assert.Equal(NbdError.None, (await c.CallAsync(NbdCommand.Write, 65536 + 512, (uint)data.Length, data)).Error);
        Assert.Equal(data, (await c.CallAsync(NbdCommand.Read, 65536 + 512, (uint)data.Length)).Data);
        Assert.Equal(new byte[4096], (await c.CallAsync(NbdCommand.Read, 512 * 1024, 4096)).Data);
        Assert.Equal(NbdError.None, (await c.CallAsync(NbdCommand.WriteZeroes, 65536 + 1024, 1024)).Error);
        byte[] back = (await c.CallAsync(NbdCommand.Read, 65536 + 512, (uint)data.Length)).Data;
        Assert.Equal(new byte[1024], back[512..1536]);
        Assert.Equal(data[1536..], back[1536..]);
        long before = _device.Inner.Flushes;
        Assert.Equal(NbdError.None, (await c.CallAsync(NbdCommand.Flush, 0, 0)).Error);
        Assert.Equal(before + 1, _device.Inner.Flushes);
    }

    [Fact]
    public async Task ManyRequestsAreInFlightAndRepliesComeBackInCompletionOrder()
    {
        await using TestNbdClient c = await TestNbdClient.OpenAsync(_server.Endpoint, "disk");
        ulong held = await c.SendAsync(NbdCommand.Read, GatedDevice.GatedOffset, 4096);
        await _device.Reached.Task; // the first request is being served, and stays so
        var later = new List<ulong>();
        for (int i = 0; i < 20; i++)
        {
            later.Add(await c.SendAsync(NbdCommand.Read, 4096L * (20 + i), 4096));
        }
        var order = new List<ulong>();
        for (int i = 0; i < 20; i++)
        {
            order.Add((await c.ReceiveAsync()).Cookie);
        }
        Assert.Equal(later.Order(), order.Order()); // all answered while the first was held
        _device.Gate.SetResult();
        var (cookie, error, _) = await c.ReceiveAsync();
        Assert.Equal(held, cookie);
        Assert.Equal(NbdError.None, error);
    }

    [Fact]
    public async Task BadRequestsGetEinvalAndTheConnectionGoesOn()
    {
        await using TestNbdClient c = await TestNbdClient.OpenAsync(_server.Endpoint, "disk");
        byte[] data = Pattern(2, 4096);
        Assert.Equal(NbdError.Invalid, (await c.CallAsync(NbdCommand.Write, Size - 2048, 4096, data)).Error); // its payload is consumed
        Assert.Equal(NbdError.Invalid, (await c.CallAsync(NbdCommand.Read, Size, 512)).Error);
        Assert.Equal(NbdError.Invalid, (await c.CallAsync(NbdCommand.Read, 0, 0)).Error);
        Assert.Equal(NbdError.Invalid, (await c.CallAsync(NbdCommand.Read, 0, NbdLimits.MaximumPayload + 1)).Error);
        Assert.Equal(NbdError.Invalid, (await c.CallAsync(NbdCommand.BlockStatus, 0, 4096)).Error);
        Assert.Equal(new byte[2048], (await c.CallAsync(NbdCommand.Read, Size - 2048, 2048)).Data); // nothing was written
        Assert.Equal(NbdError.None, (await c.CallAsync(NbdCommand.Write, Size - 4096, 4096, data)).Error);
        Assert.True(_server.Stats.InvalidRequests >= 5);
    }

    [Fact]
    public async Task ADeviceFailureIsEioAndCounted()
    {
        var device = new MemoryDevice(Size) { FailWith = NbdError.Io };
        await using var server = new NbdServer(new Catalog(device), new IPEndPoint(IPAddress.Loopback, 0));
        server.Start();
        await using TestNbdClient c = await TestNbdClient.OpenAsync(server.Endpoint, "disk");
        Assert.Equal(NbdError.Io, (await c.CallAsync(NbdCommand.Read, 0, 512)).Error);
        Assert.Equal(NbdError.Io, (await c.CallAsync(NbdCommand.Flush, 0, 0)).Error);
        Assert.Equal(2, server.Stats.IoErrors);
        device.FailWith = null;
        Assert.Equal(NbdError.None, (await c.CallAsync(NbdCommand.Read, 0, 512)).Error);
    }

    [Fact]
    public async Task RandomBytesAsAHandshakeCloseThatConnectionOnlyAndAGoodClientIsServed()
    {
        long refused = _server.Stats.ProtocolViolations;
        await using (TestNbdClient bad = await TestNbdClient.ConnectAsync(_server.Endpoint))
        {
            await bad.WriteAsync(Enumerable.Range(0, 64).Select(i => (byte)(i * 37 + 11)).ToArray());
            Assert.True(await bad.ClosedByServerAsync());
        }
        Assert.Equal(refused + 1, _server.Stats.ProtocolViolations);

        // Garbage before the client flags, and a connection cut in the middle of an option: the same.
        using (var raw = new System.Net.Sockets.TcpClient())
        {
            await raw.ConnectAsync(_server.Endpoint);
            await raw.GetStream().WriteAsync(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3 });
            byte[] sink = new byte[256];
            while (await raw.GetStream().ReadAsync(sink) > 0)
            {
            }
        }
        await using (TestNbdClient cut = await TestNbdClient.ConnectAsync(_server.Endpoint))
        {
            await cut.WriteAsync([.. TestNbdClient.U32(0x49484156), 0x45]); // half an option magic
        }

        await using TestNbdClient good = await TestNbdClient.OpenAsync(_server.Endpoint, "disk");
        Assert.Equal(NbdError.None, (await good.CallAsync(NbdCommand.Write, 0, 512, Pattern(3, 512))).Error);
    }

    [Fact]
    public async Task AnOversizedWriteClosesTheConnectionAndOthersGoOn()
    {
        await using TestNbdClient other = await TestNbdClient.OpenAsync(_server.Endpoint, "disk");
        await using TestNbdClient c = await TestNbdClient.OpenAsync(_server.Endpoint, "disk");
        await c.SendAsync(NbdCommand.Write, 0, NbdLimits.MaximumPayload + 1, payload: null);
        Assert.True(await c.ClosedByServerAsync());
        Assert.Equal(NbdError.None, (await other.CallAsync(NbdCommand.Read, 0, 512)).Error);
    }

    [Fact]
    public async Task OldStyleExportNameAndAbortWork()
    {
        await using (TestNbdClient c = await TestNbdClient.ConnectAsync(_server.Endpoint))
        {
            await c.SendOptionAsync(NbdOption.ExportName, Encoding.UTF8.GetBytes("disk"));
            byte[] reply = await c.ReadAsync(10); // NO_ZEROES was negotiated: no padding
            Assert.Equal((ulong)Size, System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(reply));
            var flags = (TransmissionFlags)System.Buffers.Binary.BinaryPrimitives.ReadUInt16BigEndian(reply.AsSpan(8));
            Assert.True(flags.HasFlag(TransmissionFlags.HasFlags));
            Assert.Equal(NbdError.None, (await c.CallAsync(NbdCommand.Read, 0, 512)).Error);
        }
        await using (TestNbdClient c = await TestNbdClient.ConnectAsync(_server.Endpoint))
        {
            await c.SendOptionAsync(NbdOption.Abort, []);
            Assert.Equal(NbdOptionReply.Ack, (await c.ReadOptionReplyAsync(NbdOption.Abort)).Type);
            Assert.True(await c.ClosedByServerAsync());
        }
    }

    [Fact]
    public async Task DisconnectAnswersWhatIsInFlightFirst()
    {
        await using TestNbdClient c = await TestNbdClient.OpenAsync(_server.Endpoint, "disk");
        ulong write = await c.SendAsync(NbdCommand.Write, 4096, 4096, Pattern(4, 4096));
        await c.SendAsync(NbdCommand.Disconnect, 0, 0);
        var (cookie, error, _) = await c.ReceiveAsync();
        Assert.Equal(write, cookie);
        Assert.Equal(NbdError.None, error);
        Assert.True(await c.ClosedByServerAsync());
    }
}
