# machine: AMD EPYC (family 25 model 17), 2 cpus | isa avx2 (best) | threads 2 (default) | OMP_WAIT_POLICY unset | duet 0.1.0 | OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY USE_OPENMP Cooperlake MAX_THREADS=64 | oneDNN 2.6.3 | cc gcc 12.2.0 | 2026-11-26 05:24 UTC
# Draws dispatch.svg from the CSV beside it: cd there; gnuplot dispatch.gp
set datafile separator ','
# the other series' rows are NaN: skipped, not breaking the line
set datafile missing NaN
set terminal svg size 1200,520 noenhanced font 'sans,12' background '#ffffff'
set output 'dispatch.svg'
set logscale x 2
set grid
set key top left
set xlabel 'n (elements)'
set ylabel 'ns per op above the kernel'
set multiplot layout 1,2 title 'duet-bench dispatch: what each mode adds to one op beyond its kernel (median)'
set title 'eager: op + release - kernel'
plot 'dispatch.csv' using 2:((strcol(1) eq 'add' && strcol(4) eq 'scalar') ? $11 : NaN) with linespoints dashtype 1 title 'add scalar', \
     'dispatch.csv' using 2:((strcol(1) eq 'add' && strcol(4) eq 'avx2') ? $11 : NaN) with linespoints dashtype 2 title 'add avx2', \
     'dispatch.csv' using 2:((strcol(1) eq 'mul' && strcol(4) eq 'scalar') ? $11 : NaN) with linespoints dashtype 1 title 'mul scalar', \
     'dispatch.csv' using 2:((strcol(1) eq 'mul' && strcol(4) eq 'avx2') ? $11 : NaN) with linespoints dashtype 2 title 'mul avx2', \
     'dispatch.csv' using 2:((strcol(1) eq 'exp' && strcol(4) eq 'scalar') ? $11 : NaN) with linespoints dashtype 1 title 'exp scalar', \
     'dispatch.csv' using 2:((strcol(1) eq 'exp' && strcol(4) eq 'avx2') ? $11 : NaN) with linespoints dashtype 2 title 'exp avx2'
set title 'graph: 1-op graph, duet_graph_run - kernel'
plot 'dispatch.csv' using 2:((strcol(1) eq 'add' && strcol(4) eq 'scalar') ? $17 : NaN) with linespoints dashtype 1 title 'add scalar', \
     'dispatch.csv' using 2:((strcol(1) eq 'add' && strcol(4) eq 'avx2') ? $17 : NaN) with linespoints dashtype 2 title 'add avx2', \
     'dispatch.csv' using 2:((strcol(1) eq 'mul' && strcol(4) eq 'scalar') ? $17 : NaN) with linespoints dashtype 1 title 'mul scalar', \
     'dispatch.csv' using 2:((strcol(1) eq 'mul' && strcol(4) eq 'avx2') ? $17 : NaN) with linespoints dashtype 2 title 'mul avx2', \
     'dispatch.csv' using 2:((strcol(1) eq 'exp' && strcol(4) eq 'scalar') ? $17 : NaN) with linespoints dashtype 1 title 'exp scalar', \
     'dispatch.csv' using 2:((strcol(1) eq 'exp' && strcol(4) eq 'avx2') ? $17 : NaN) with linespoints dashtype 2 title 'exp avx2'
unset multiplot
