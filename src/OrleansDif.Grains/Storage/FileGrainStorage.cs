using System.Text.Json;
using Microsoft.Extensions.Logging;
using Orleans.Storage;

namespace OrleansDif.Grains;

/// <summary>A state that can be told its stored copy was unreadable (torn, garbage, failed its checksum).</summary>
public interface IStateCorruption
{
    /// <summary>Null when the state was read whole; else why the stored copy could not be trusted.</summary>
    string? CorruptionReason { get; set; }
}

/// <summary>
/// Grain state in files under the data directory, one JSON file per grain, replaced atomically and crash-safely:
/// the envelope carries a CRC-32 of the state, it is written to a temporary file of a unique name, flushed to the
/// medium, renamed over the old one, and the directory is flushed so the rename itself survives a crash. The ETag is
/// the state's write count, so a stale writer is refused instead of overwriting newer state. A torn or garbage file
/// is detected (unparsable, or its checksum fails) and reported: it is moved aside (<c>.corrupt</c>), logged naming
/// the grain, counted, and the grain activates with a fresh state that says so (<see cref="IStateCorruption"/>),
/// never bricked. Used for the pages' write intents; never on a per-write path.
/// </summary>
public sealed class FileGrainStorage(string directory, Microsoft.Extensions.Logging.ILogger? logger = null) : IGrainStorage
{
    public const string Name = "dif";

    private sealed record Envelope(long ETag, JsonElement State, uint Crc);

    public async Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        string path = PathOf(stateName, grainId);
        if (!File.Exists(path))
        {
            grainState.RecordExists = false;
            grainState.ETag = null;
            return;
        }
        byte[] bytes = await File.ReadAllBytesAsync(path);
        if (TryOpen(bytes, out Envelope? envelope, out string? why) && TryState(envelope!, out T? state, out why))
        {
            grainState.State = state!;
            grainState.ETag = envelope!.ETag.ToString(System.Globalization.CultureInfo.InvariantCulture);
            grainState.RecordExists = true;
            return;
        }
        // Torn or garbage: reported, moved aside for inspection, and the grain goes on with a state that says so.
        string aside = path + ".corrupt";
        File.Move(path, aside, overwrite: true);
        string reason = $"state file of {grainId} ({path}) is unreadable: {why}; kept as {aside}";
        if (logger is not null)
        {
            logger.LogError("{Reason}", reason);
        }
        DifMetrics.CorruptStateFiles.Add(1);
        T fresh = Activator.CreateInstance<T>();
        if (fresh is IStateCorruption corruption)
        {
            corruption.CorruptionReason = reason;
        }
        grainState.State = fresh;
        grainState.ETag = null;
        grainState.RecordExists = false;
    }

    public async Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        string path = PathOf(stateName, grainId);
        long current = CurrentETag(path);
        string? expected = grainState.ETag;
        if ((expected is null && current != 0) || (expected is not null && expected != current.ToString(System.Globalization.CultureInfo.InvariantCulture)))
        {
            throw new InconsistentStateException($"state of {grainId} was written by someone else", current.ToString(), expected ?? "none");
        }
        long next = current + 1;
        JsonElement state = JsonSerializer.SerializeToElement(grainState.State);
        byte[] bytes = JsonSerializer.SerializeToUtf8Bytes(new Envelope(next, state, Checksum(next, state)));
        string folder = Path.GetDirectoryName(path)!;
        Directory.CreateDirectory(folder);
        string temp = $"{path}.{Guid.NewGuid():N}.tmp"; // unique: two writers never share a temporary file
        try
        {
            using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 4096, FileOptions.None))
            {
                await file.WriteAsync(bytes);
                file.Flush(flushToDisk: true);
            }
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
        DirectorySync.Flush(folder);
        grainState.ETag = next.ToString(System.Globalization.CultureInfo.InvariantCulture);
        grainState.RecordExists = true;
    }

    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        string path = PathOf(stateName, grainId);
        File.Delete(path);
        DirectorySync.Flush(Path.GetDirectoryName(path)!);
        grainState.ETag = null;
        grainState.RecordExists = false;
        return Task.CompletedTask;
    }

    private static uint Checksum(long etag, JsonElement state)
    {
        var crc = new System.IO.Hashing.Crc32();
        Span<byte> number = stackalloc byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(number, etag);
        crc.Append(number);
        crc.Append(System.Text.Encoding.UTF8.GetBytes(state.GetRawText()));
        return crc.GetCurrentHashAsUInt32();
    }

    private static bool TryOpen(byte[] bytes, out Envelope? envelope, out string? why)
    {
        try
        {
            envelope = JsonSerializer.Deserialize<Envelope>(bytes);
        }
        catch (JsonException e)
        {
            (envelope, why) = (null, "not a whole JSON envelope (" + e.Message + ")");
            return false;
        }
        if (envelope is null || envelope.State.ValueKind == JsonValueKind.Undefined)
        {
            why = "empty";
            return false;
        }
        if (Checksum(envelope.ETag, envelope.State) != envelope.Crc)
        {
            why = "checksum mismatch";
            return false;
        }
        why = null;
        return true;
    }

    private static bool TryState<T>(Envelope envelope, out T? state, out string? why)
    {
        try
        {
            state = envelope.State.Deserialize<T>();
            why = state is null ? "null state" : null;
            return state is not null;
        }
        catch (JsonException e)
        {
            (state, why) = (default, "state does not match its type (" + e.Message + ")");
            return false;
        }
    }

    /// <summary>
    /// The states of the grains of type <paramref name="grainType"/> whose keys are "<paramref name="keyPrefix"/>/NAME",
    /// as (NAME, state); for a new flusher that must find pages marked in persistent state without activating all.
    /// </summary>
    public static IEnumerable<(string Name, T State)> List<T>(string directory, string stateName, string grainType, string keyPrefix)
    {
        string folder = Path.Combine(directory, "state", Sanitize(stateName), Sanitize(grainType), Sanitize(keyPrefix));
        if (!Directory.Exists(folder))
        {
            yield break;
        }
        foreach (string file in Directory.EnumerateFiles(folder, "*.json"))
        {
            byte[] bytes;
            try
            {
                bytes = File.ReadAllBytes(file);
            }
            catch (IOException)
            {
                continue; // replaced or moved aside right now: the page answers for itself when asked
            }
            string name = Path.GetFileNameWithoutExtension(file);
            if (TryOpen(bytes, out Envelope? envelope, out string? why) && TryState(envelope!, out T? state, out why))
            {
                yield return (name, state!);
            }
            else
            {
                // Unreadable: named all the same, marked, so that a caller looking for work does not skip it.
                T fresh = Activator.CreateInstance<T>();
                if (fresh is IStateCorruption corruption)
                {
                    corruption.CorruptionReason = $"state file {file} is unreadable: {why}";
                }
                yield return (name, fresh);
            }
        }
    }

    private static long CurrentETag(string path)
    {
        if (!File.Exists(path))
        {
            return 0;
        }
        return TryOpen(File.ReadAllBytes(path), out Envelope? envelope, out _) ? envelope!.ETag : 0;
    }

    /// <summary>state/NAME/TYPE/KEY.json; the key's '/' (volume/page) becomes a directory level.</summary>
    private string PathOf(string stateName, GrainId grainId)
    {
        string key = grainId.Key.ToString()!;
        string safe = string.Join(Path.DirectorySeparatorChar, key.Split('/').Select(Sanitize));
        return Path.Combine(directory, "state", Sanitize(stateName), Sanitize(grainId.Type.ToString()!), safe + ".json");
    }

    private static string Sanitize(string part)
    {
        var chars = part.ToCharArray();
        for (int i = 0; i < chars.Length; i++)
        {
            if (!(char.IsAsciiLetterOrDigit(chars[i]) || chars[i] is '-' or '_' or '.'))
            {
                chars[i] = '_';
            }
        }
        string s = new(chars);
        return s is "." or ".." or "" ? "_" + s : s;
    }
}

/// <summary>fsync of a directory, so that a rename in it survives a crash (Linux; elsewhere a no-op).</summary>
internal static class DirectorySync
{
    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true, EntryPoint = "open")]
    private static extern int Open([System.Runtime.InteropServices.MarshalAs(System.Runtime.InteropServices.UnmanagedType.LPUTF8Str)] string path, int flags);

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true, EntryPoint = "fsync")]
    private static extern int Fsync(int fd);

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true, EntryPoint = "close")]
    private static extern int Close(int fd);

    private const int ReadOnlyDirectory = 0x10000; // O_RDONLY | O_DIRECTORY

    public static void Flush(string directory)
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }
        int fd = Open(directory, ReadOnlyDirectory);
        if (fd < 0)
        {
            throw new IOException($"cannot open directory {directory} to flush it (errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()})");
        }
        try
        {
            if (Fsync(fd) != 0)
            {
                throw new IOException($"fsync of directory {directory} failed (errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()})");
            }
        }
        finally
        {
            Close(fd);
        }
    }
}
