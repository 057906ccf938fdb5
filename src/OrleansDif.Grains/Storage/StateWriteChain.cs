namespace OrleansDif.Grains;

/// <summary>
/// The writes of one grain's persistent state, one after another: each starts when the one before it ended, failed
/// or not (a failure belongs to its own caller). A grain that interleaves calls needs this: two writes of the same
/// state in flight at once would race.
/// </summary>
public sealed class StateWriteChain
{
    private Task _last = Task.CompletedTask;

    /// <summary>The last write queued (completed when nothing is under way).</summary>
    public Task Last => _last;

    /// <summary>Queues <paramref name="write"/> after every write under way.</summary>
    public Task Then(Func<Task> write)
    {
        Task previous = _last;
        return _last = After(previous, write);

        static async Task After(Task before, Func<Task> write)
        {
            try
            {
                await before;
            }
            catch (Exception)
            {
                // that write failed on its own; this one is tried regardless
            }
            await write();
        }
    }
}
