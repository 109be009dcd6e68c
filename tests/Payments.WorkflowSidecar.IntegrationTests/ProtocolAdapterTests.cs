using Google.Protobuf;
using Payments.WorkflowSidecar.Protocol;
using DaprProto = Dapr.DurableTask.Protobuf;
using EngineProto = Microsoft.DurableTask.Protobuf;

namespace Payments.WorkflowSidecar.IntegrationTests;

public sealed class ProtocolAdapterTests
{
    [Fact]
    public void DaprWorkflowResponse_IsReadByTheEngine_OnlyAfterTheAdapterDropsItsCollidingFields()
    {
        var response = new DaprProto.WorkflowResponse
        {
            InstanceId = "pay-1",
            CompletionToken = "token-7",
            Version = new DaprProto.WorkflowVersion(),
        };
        response.Actions.Add(new DaprProto.WorkflowAction
        {
            Id = 3,
            Router = new DaprProto.TaskRouter { SourceAppID = "orchestrator", TargetAppID = "ledger" },
            ScheduleTask = new DaprProto.ScheduleTaskAction
            {
                Name = "HoldFundsActivity",
                Input = "{\"amountMinor\":1250}",
                TaskExecutionId = "exec-1",
                Router = new DaprProto.TaskRouter { SourceAppID = "orchestrator" },
            },
        });
        var bytes = response.ToByteArray();

        Assert.ThrowsAny<InvalidProtocolBufferException>(() => EngineProto.OrchestratorResponse.Parser.ParseFrom(bytes));
        var adapted = EngineProto.OrchestratorResponse.Parser.ParseFrom(DaprWorkflowProtocolAdapter.WorkflowResponseFilter.Apply(bytes));

        Assert.Equal("pay-1", adapted.InstanceId);
        Assert.Equal("token-7", adapted.CompletionToken);
        var action = Assert.Single(adapted.Actions);
        Assert.Equal(3, action.Id);
        Assert.Equal("HoldFundsActivity", action.ScheduleTask.Name);
        Assert.Equal("{\"amountMinor\":1250}", action.ScheduleTask.Input);
    }

    [Fact]
    public void Frames_AreRewrittenOneByOne_WithTheirLengthsRecomputed()
    {
        var message = new DaprProto.WorkflowResponse { InstanceId = "x", Version = new DaprProto.WorkflowVersion() }.ToByteArray();
        var frame = new byte[5 + message.Length];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1, 4), (uint)message.Length);
        message.CopyTo(frame, 5);

        var rewritten = DaprWorkflowProtocolAdapter.RewriteFrames([.. frame, .. frame])!;

        var length = (int)System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(rewritten.AsSpan(1, 4));
        Assert.Equal(2 * (5 + length), rewritten.Length);
        Assert.Equal("x", EngineProto.OrchestratorResponse.Parser.ParseFrom(rewritten.AsSpan(5, length)).InstanceId);
    }

    /// <summary>A frame whose declared length passes the body's end (0xFFFFFFFF read as a negative int), or a message
    /// that is not protobuf, made the adapter throw: a bare HTTP 500 without a gRPC status. Such a body now goes on
    /// unchanged, and the gRPC service refuses it with its own status.</summary>
    [Theory]
    [InlineData(new byte[] { 0, 0, 0, 3, 0xe8, 1, 2, 3 })] // declares 1,000 bytes, has 3
    [InlineData(new byte[] { 0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3 })] // declares 4 GiB
    [InlineData(new byte[] { 0, 0, 0, 0, 3, 0xff, 0xff, 0xff })] // a truncated varint, not protobuf
    [InlineData(new byte[] { 0, 0, 0, 0, 1, 0x0B })] // a group's start: a wire type the filter does not read
    [InlineData(new byte[] { 0, 0, 0, 0, 2, 0x0A, 0x00, 7, 7 })] // a whole frame, then two stray bytes
    public void MalformedFrames_AreNotRewritten(byte[] body)
    {
        Assert.Null(DaprWorkflowProtocolAdapter.RewriteFrames(body));
    }
}
