using BenchmarkDotNet.Running;

// Decode-path micro-benchmarks (BenchmarkDotNet, MemoryDiagnoser). Run them with:
//   dotnet run -c Release --project benchmarks/DBSync.Benchmarks -- --filter '*'
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
