using System.Text.Json;
using Orleans.Storage;

namespace OrleansDif.Grains;

/// <summary>
/// Grain state in files under the data directory, one JSON file per grain, replaced atomically (write a
/// temporary file, flush it to the medium, rename over). The ETag is the state's write count, so a stale
/// writer is refused instead of overwriting newer state. Used for each page's last durable version, which
/// must survive a silo crash for lost writes to be detected.
/// </summary>
public sealed class FileGrainStorage(string directory) : IGrainStorage
{
    public const string Name = "dif";

    private sealed record Envelope(long ETag, JsonElement State);

    public async Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        string path = PathOf(stateName, grainId);
        if (!File.Exists(path))
        {
            grainState.RecordExists = false;
            grainState.ETag = null;
            return;
        }
        Envelope envelope = JsonSerializer.Deserialize<Envelope>(await File.ReadAllBytesAsync(path))
            ?? throw new InconsistentStateException($"state file {path} is empty");
        grainState.State = envelope.State.Deserialize<T>()!;
        grainState.ETag = envelope.ETag.ToString(System.Globalization.CultureInfo.InvariantCulture);
        grainState.RecordExists = true;
    }

    public async Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        string path = PathOf(stateName, grainId);
        long current = await CurrentETag(path);
        string? expected = grainState.ETag;
        if ((expected is null && current != 0) || (expected is not null && expected != current.ToString(System.Globalization.CultureInfo.InvariantCulture)))
        {
            throw new InconsistentStateException($"state of {grainId} was written by someone else", current.ToString(), expected ?? "none");
        }
        long next = current + 1;
        byte[] bytes = JsonSerializer.SerializeToUtf8Bytes(new Envelope(next, JsonSerializer.SerializeToElement(grainState.State)));
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        string temp = path + ".tmp";
        using (var file = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 4096, FileOptions.None))
        {
            await file.WriteAsync(bytes);
            file.Flush(flushToDisk: true);
        }
        File.Move(temp, path, overwrite: true);
        grainState.ETag = next.ToString(System.Globalization.CultureInfo.InvariantCulture);
        grainState.RecordExists = true;
    }

    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        File.Delete(PathOf(stateName, grainId));
        grainState.ETag = null;
        grainState.RecordExists = false;
        return Task.CompletedTask;
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
            Envelope? envelope;
            try
            {
                envelope = JsonSerializer.Deserialize<Envelope>(File.ReadAllBytes(file));
            }
            catch (Exception e) when (e is IOException or JsonException)
            {
                continue; // being replaced right now, or not a state file: the page answers for itself when asked
            }
            if (envelope is not null && envelope.State.Deserialize<T>() is T state)
            {
                yield return (Path.GetFileNameWithoutExtension(file), state);
            }
        }
    }

    private static async Task<long> CurrentETag(string path)
    {
        if (!File.Exists(path))
        {
            return 0;
        }
        Envelope? envelope = JsonSerializer.Deserialize<Envelope>(await File.ReadAllBytesAsync(path));
        return envelope?.ETag ?? 0;
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
