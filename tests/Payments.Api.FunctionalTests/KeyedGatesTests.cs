using Payments.Api.Limits;

namespace Payments.Api.FunctionalTests;

/// <summary>The deposit volume's gates: one turn at a time per counter, none shared between counters (striped gates
/// made one merchant's burst of deposits hold up the merchants whose counters shared its stripe), and nothing kept once
/// no one holds or awaits a key.</summary>
public sealed class KeyedGatesTests
{
    [Fact]
    public async Task AKeysTurn_IsItsAlone_OtherKeysGoOn_AndNothingStaysAfterwards()
    {
        var gates = new KeyedGates();
        var first = await gates.EnterAsync("merchant-a/USD/20261206", TimeSpan.Zero, CancellationToken.None);
        Assert.NotNull(first);

        // The same key waits its turn (none within the bound here); every other key goes on at once.
        Assert.Null(await gates.EnterAsync("merchant-a/USD/20261206", TimeSpan.Zero, CancellationToken.None));
        var others = await Task.WhenAll(Enumerable.Range(0, 100).Select(index =>
            gates.EnterAsync($"merchant-{index}/EUR/20261206", TimeSpan.Zero, CancellationToken.None)));
        Assert.All(others, Assert.NotNull);
        Assert.Equal(101, gates.Count);

        // A waiter gets the turn when it is given back.
        var waiting = gates.EnterAsync("merchant-a/USD/20261206", TimeSpan.FromMinutes(1), CancellationToken.None);
        Assert.False(waiting.IsCompleted);
        first!.Dispose();
        var second = await waiting;
        Assert.NotNull(second);

        second!.Dispose();
        second.Dispose(); // twice is once
        foreach (var other in others)
        {
            other!.Dispose();
        }

        Assert.Equal(0, gates.Count);
        Assert.NotNull(await gates.EnterAsync("merchant-a/USD/20261206", TimeSpan.Zero, CancellationToken.None));
    }
}
