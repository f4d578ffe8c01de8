namespace DBSync.Runtime.Tests;

public sealed class PlaceholderTests
{
    [Fact]
    public void Project_Builds() => Assert.True(true);
}
