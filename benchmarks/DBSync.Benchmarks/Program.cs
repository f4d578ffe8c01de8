using BenchmarkDotNet.Running;

// Benchmarks are added with the performance issue; run them with:
//   dotnet run -c Release --project benchmarks/DBSync.Benchmarks -- --filter '*'
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
