using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace OrleansDif.Nbd;

/// <summary>
/// One client connection: the fixed newstyle handshake, then the transmission phase. Requests are read in order
/// and served concurrently (up to a limit); each reply is written whole under one lock, in completion order.
/// </summary>
internal sealed class NbdConnection(Socket socket, IExportCatalog exports, NbdStats stats, ILogger logger, int maxInFlight)
{
    private const ushort ServerFlags = (ushort)(HandshakeFlags.FixedNewstyle | HandshakeFlags.NoZeroes);

    private readonly NetworkStream _stream = new(socket, ownsSocket: true);
    private PipeReader _reader = null!;
    private PipeWriter _writer = null!;
    private readonly Channel<Reply> _replies = Channel.CreateUnbounded<Reply>(new UnboundedChannelOptions { SingleReader = true });
    private readonly string _peer = socket.RemoteEndPoint?.ToString() ?? "?";
    private bool _noZeroes;

    public async Task RunAsync(CancellationToken ct)
    {
        _reader = PipeReader.Create(_stream);
        _writer = PipeWriter.Create(_stream);
        try
        {
            IBlockDevice? device = await HandshakeAsync(ct);
            if (device is not null)
            {
                await TransmitAsync(device, ct);
            }
        }
        catch (NbdProtocolException e) when (e.PeerLeft)
        {
            logger.LogDebug("NBD client {Peer} left during the handshake", _peer);
        }
        catch (NbdProtocolException e)
        {
            stats.ProtocolViolation();
            logger.LogWarning("NBD client {Peer}: {Why}; connection closed", _peer, e.Message);
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            logger.LogDebug(e, "NBD client {Peer} went away", _peer);
        }
        catch (Exception e)
        {
            logger.LogError(e, "NBD client {Peer}: connection failed", _peer);
        }
        finally
        {
            await _reader.CompleteAsync();
            try
            {
                await _writer.CompleteAsync();
            }
            catch (Exception)
            {
                // the peer is gone: nothing left to flush to
            }
            await _stream.DisposeAsync();
        }
    }

    // ------------------------------------------------------------------ handshake

    /// <summary>Negotiates an export; null when the client aborted or left.</summary>
    private async Task<IBlockDevice?> HandshakeAsync(CancellationToken ct)
    {
        byte[] hello = new byte[18];
        BinaryPrimitives.WriteUInt64BigEndian(hello, NbdMagic.Init);
        BinaryPrimitives.WriteUInt64BigEndian(hello.AsSpan(8), NbdMagic.Option);
        BinaryPrimitives.WriteUInt16BigEndian(hello.AsSpan(16), ServerFlags);
        await _writer.WriteAsync(hello, ct);

        uint clientFlags = BinaryPrimitives.ReadUInt32BigEndian(await ReadExactAsync(4, ct));
        if ((clientFlags & ~(uint)(ClientFlags.FixedNewstyle | ClientFlags.NoZeroes)) != 0)
        {
            throw new NbdProtocolException($"unknown client flags 0x{clientFlags:X8}");
        }
        if ((clientFlags & (uint)ClientFlags.FixedNewstyle) == 0)
        {
            throw new NbdProtocolException("the client does not speak fixed newstyle");
        }
        _noZeroes = (clientFlags & (uint)ClientFlags.NoZeroes) != 0;

        while (true)
        {
            byte[] header = await ReadExactAsync(16, ct);
            ulong magic = BinaryPrimitives.ReadUInt64BigEndian(header);
            if (magic != NbdMagic.Option)
            {
                throw new NbdProtocolException($"option magic 0x{magic:X16}");
            }
            var option = (NbdOption)BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(8));
            uint length = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12));
            if (length > NbdLimits.MaximumOption)
            {
                throw new NbdProtocolException($"option {option} of {length} bytes");
            }
            byte[] data = length == 0 ? [] : await ReadExactAsync((int)length, ct);
            switch (option)
            {
                case NbdOption.ExportName:
                {
                    // Old-style selection: no error reply exists, an unknown name closes the connection.
                    string name = Encoding.UTF8.GetString(data);
                    IBlockDevice device = await exports.OpenAsync(name, ct)
                        ?? throw new NbdProtocolException($"unknown export '{name}'");
                    byte[] reply = new byte[_noZeroes ? 10 : 134];
                    BinaryPrimitives.WriteUInt64BigEndian(reply, (ulong)device.Size);
                    BinaryPrimitives.WriteUInt16BigEndian(reply.AsSpan(8), (ushort)FlagsOf(device));
                    await _writer.WriteAsync(reply, ct);
                    return device;
                }
                case NbdOption.Abort:
                    await OptionReplyAsync(option, NbdOptionReply.Ack, [], ct);
                    return null;
                case NbdOption.List:
                    if (data.Length != 0)
                    {
                        await OptionErrorAsync(option, NbdOptionReply.ErrInvalid, "LIST takes no data", ct);
                        break;
                    }
                    foreach (string name in exports.Names)
                    {
                        byte[] utf8 = Encoding.UTF8.GetBytes(name);
                        byte[] item = new byte[4 + utf8.Length];
                        BinaryPrimitives.WriteUInt32BigEndian(item, (uint)utf8.Length);
                        utf8.CopyTo(item, 4);
                        await OptionReplyAsync(option, NbdOptionReply.Server, item, ct);
                    }
                    await OptionReplyAsync(option, NbdOptionReply.Ack, [], ct);
                    break;
                case NbdOption.Info:
                case NbdOption.Go:
                {
                    IBlockDevice? device = await InfoAsync(option, data, ct);
                    if (device is not null && option == NbdOption.Go)
                    {
                        return device;
                    }
                    break;
                }
                default:
                    // STARTTLS, structured replies, meta contexts, extended headers: not offered; the client goes on without.
                    await OptionErrorAsync(option, NbdOptionReply.ErrUnsupported, $"option {(uint)option} is not supported", ct);
                    break;
            }
        }
    }

    /// <summary>INFO / GO: the export's size, flags and block sizes, then ACK; null (after an error reply) when it cannot be served.</summary>
    private async Task<IBlockDevice?> InfoAsync(NbdOption option, byte[] data, CancellationToken ct)
    {
        if (data.Length < 6)
        {
            await OptionErrorAsync(option, NbdOptionReply.ErrInvalid, "truncated request", ct);
            return null;
        }
        uint nameLength = BinaryPrimitives.ReadUInt32BigEndian(data);
        if (nameLength > data.Length - 6)
        {
            await OptionErrorAsync(option, NbdOptionReply.ErrInvalid, "name longer than the option", ct);
            return null;
        }
        int requests = BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(4 + (int)nameLength));
        if (data.Length != 6 + nameLength + 2 * requests)
        {
            await OptionErrorAsync(option, NbdOptionReply.ErrInvalid, "information requests do not match the option's length", ct);
            return null;
        }
        string name = Encoding.UTF8.GetString(data, 4, (int)nameLength);
        IBlockDevice? device = await exports.OpenAsync(name, ct);
        if (device is null)
        {
            await OptionErrorAsync(option, NbdOptionReply.ErrUnknown, $"no export named '{name}'", ct);
            return null;
        }
        byte[] export = new byte[12];
        BinaryPrimitives.WriteUInt16BigEndian(export, (ushort)NbdInfo.Export);
        BinaryPrimitives.WriteUInt64BigEndian(export.AsSpan(2), (ulong)device.Size);
        BinaryPrimitives.WriteUInt16BigEndian(export.AsSpan(10), (ushort)FlagsOf(device));
        await OptionReplyAsync(option, NbdOptionReply.Info, export, ct);
        byte[] sizes = new byte[14];
        BinaryPrimitives.WriteUInt16BigEndian(sizes, (ushort)NbdInfo.BlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(sizes.AsSpan(2), NbdLimits.MinimumBlock);
        BinaryPrimitives.WriteUInt32BigEndian(sizes.AsSpan(6), NbdLimits.PreferredBlock);
        BinaryPrimitives.WriteUInt32BigEndian(sizes.AsSpan(10), NbdLimits.MaximumPayload);
        await OptionReplyAsync(option, NbdOptionReply.Info, sizes, ct);
        await OptionReplyAsync(option, NbdOptionReply.Ack, [], ct);
        return device;
    }

    private static TransmissionFlags FlagsOf(IBlockDevice device) =>
        TransmissionFlags.HasFlags | TransmissionFlags.SendFlush | TransmissionFlags.SendFua | TransmissionFlags.SendTrim
        | TransmissionFlags.SendWriteZeroes | (device.FlushCoversAllConnections ? TransmissionFlags.CanMultiConn : 0);

    private async Task OptionReplyAsync(NbdOption option, NbdOptionReply type, byte[] data, CancellationToken ct)
    {
        byte[] header = new byte[20];
        BinaryPrimitives.WriteUInt64BigEndian(header, NbdMagic.OptionReply);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(8), (uint)option);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(12), (uint)type);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(16), (uint)data.Length);
        _writer.Write(header);
        _writer.Write(data);
        await _writer.FlushAsync(ct);
    }

    private Task OptionErrorAsync(NbdOption option, NbdOptionReply error, string message, CancellationToken ct) =>
        OptionReplyAsync(option, error, Encoding.UTF8.GetBytes(message), ct);

    /// <summary>Exactly <paramref name="count"/> bytes of the handshake; a client that stops short broke it (or left).</summary>
    private async Task<byte[]> ReadExactAsync(int count, CancellationToken ct)
    {
        var (bytes, got) = await TryReadAsync(count, ct);
        return bytes ?? throw (got == 0
            ? new NbdProtocolException("the client closed the connection during the handshake", peerLeft: true)
            : new NbdProtocolException("truncated handshake"));
    }

    /// <summary>The next <paramref name="count"/> bytes, or null (with how many there were) when the client stopped short.</summary>
    private async Task<(byte[]? Bytes, long Got)> TryReadAsync(int count, CancellationToken ct)
    {
        ReadResult r = await _reader.ReadAtLeastAsync(count, ct);
        if (r.Buffer.Length < count)
        {
            _reader.AdvanceTo(r.Buffer.Start, r.Buffer.End);
            return (null, r.Buffer.Length);
        }
        byte[] bytes = r.Buffer.Slice(0, count).ToArray();
        _reader.AdvanceTo(r.Buffer.GetPosition(count));
        return (bytes, count);
    }

    // ------------------------------------------------------------------ transmission

    private readonly record struct Reply(ulong Cookie, NbdError Error, byte[]? Data);

    private async Task TransmitAsync(IBlockDevice device, CancellationToken ct)
    {
        using var slots = new SemaphoreSlim(maxInFlight, maxInFlight);
        var running = new HashSet<Task>();
        Task writing = WriteRepliesAsync(ct);
        try
        {
            while (true)
            {
                ReadResult r = await _reader.ReadAtLeastAsync(NbdLimits.RequestSize, ct);
                if (r.Buffer.Length < NbdLimits.RequestSize)
                {
                    _reader.AdvanceTo(r.Buffer.Start, r.Buffer.End);
                    return; // the client left without DISC (or mid-header)
                }
                NbdRequest.TryRead(r.Buffer, out NbdRequest request);
                _reader.AdvanceTo(r.Buffer.GetPosition(NbdLimits.RequestSize));
                byte[]? payload = null;
                if (request.Command == NbdCommand.Write)
                {
                    if (request.Length > NbdLimits.MaximumPayload)
                    {
                        throw new NbdProtocolException($"write of {request.Length} bytes, more than {NbdLimits.MaximumPayload}");
                    }
                    (payload, _) = await TryReadAsync((int)request.Length, ct);
                    if (payload is null)
                    {
                        return; // truncated: the client left
                    }
                }
                if (request.Command == NbdCommand.Disconnect)
                {
                    return; // in-flight requests are answered below, then the connection closes
                }
                NbdError check = request.Check(device.Size);
                if (check != NbdError.None)
                {
                    stats.Failed(check);
                    Enqueue(new Reply(request.Cookie, check, null));
                    continue;
                }
                await slots.WaitAsync(ct);
                Task serving = ServeAsync(device, request, payload, slots, ct);
                lock (running)
                {
                    running.Add(serving);
                }
                _ = serving.ContinueWith(t =>
                {
                    lock (running)
                    {
                        running.Remove(t);
                    }
                }, TaskScheduler.Default);
            }
        }
        finally
        {
            Task[] left;
            lock (running)
            {
                left = [.. running];
            }
            await Task.WhenAll(left);
            _replies.Writer.TryComplete();
            await writing;
        }
    }

    private async Task ServeAsync(IBlockDevice device, NbdRequest request, byte[]? payload, SemaphoreSlim slots, CancellationToken ct)
    {
        try
        {
            long start = System.Diagnostics.Stopwatch.GetTimestamp();
            byte[]? data = null;
            NbdError error = NbdError.None;
            bool fua = (request.Flags & CommandFlags.Fua) != 0;
            try
            {
                switch (request.Command)
                {
                    case NbdCommand.Read:
                        data = await device.ReadAsync((long)request.Offset, (int)request.Length, ct);
                        break;
                    case NbdCommand.Write:
                        await device.WriteAsync((long)request.Offset, payload!, fua, ct);
                        break;
                    case NbdCommand.Flush:
                        await device.FlushAsync(ct);
                        break;
                    case NbdCommand.Trim:
                    case NbdCommand.WriteZeroes:
                        await device.ZeroAsync((long)request.Offset, request.Length, fua, ct);
                        break;
                }
                stats.Served(request);
                stats.Timed(request.Command, System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                error = e is BlockDeviceException b ? b.Error : NbdError.Io;
                stats.Failed(error);
                logger.LogError("NBD {Command} of {Length} bytes at {Offset} from {Peer} failed ({Error}): {Why}",
                    request.Command, request.Length, request.Offset, _peer, error, e.Message);
            }
            Enqueue(new Reply(request.Cookie, error, error == NbdError.None ? data : null));
        }
        finally
        {
            slots.Release();
        }
    }

    private void Enqueue(Reply reply)
    {
        if (!_replies.Writer.TryWrite(reply))
        {
            logger.LogDebug("NBD reply to {Peer} not sent: the connection is closing", _peer);
        }
    }

    /// <summary>
    /// The one writer of replies: writes every reply that is ready, whole, then flushes once (one send for many replies
    /// at queue depth, as a block driver completes a batch per interrupt).
    /// </summary>
    private async Task WriteRepliesAsync(CancellationToken ct)
    {
        try
        {
            while (await _replies.Reader.WaitToReadAsync(ct))
            {
                while (_replies.Reader.TryRead(out Reply reply))
                {
                    Span<byte> header = _writer.GetSpan(NbdLimits.SimpleReplySize);
                    BinaryPrimitives.WriteUInt32BigEndian(header, NbdMagic.SimpleReply);
                    BinaryPrimitives.WriteUInt32BigEndian(header[4..], (uint)reply.Error);
                    BinaryPrimitives.WriteUInt64BigEndian(header[8..], reply.Cookie);
                    _writer.Advance(NbdLimits.SimpleReplySize);
                    if (reply.Data is not null)
                    {
                        _writer.Write(reply.Data);
                    }
                }
                FlushResult flushed = await _writer.FlushAsync(ct);
                if (flushed.IsCompleted || flushed.IsCanceled)
                {
                    return;
                }
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            _replies.Writer.TryComplete();
            logger.LogDebug(e, "NBD replies to {Peer} stopped: the peer went away", _peer);
        }
    }
}
