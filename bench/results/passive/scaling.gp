# machine: AMD EPYC (family 25 model 17), 2 cpus | isa avx2 (best) | threads 2 (default) | OMP_WAIT_POLICY passive | duet 0.1.0 | OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY USE_OPENMP Cooperlake MAX_THREADS=64 | oneDNN 2.6.3 | cc gcc 12.2.0 | 2026-11-26 05:21 UTC
# Draws scaling.svg from the CSV beside it: cd there; gnuplot scaling.gp
set datafile separator ','
set datafile missing NaN
set terminal svg size 1200,560 noenhanced font 'sans,12' background '#ffffff'
set output 'scaling.svg'
set grid
set key top left font 'sans,10'
set xlabel 'threads'
set ylabel 'speedup over 1 thread (median time)'
set xrange [1:2]
set xtics 1
set yrange [0:*]
sel(w, m, v) = (strcol(1) eq w && strcol(3) eq m) ? v : NaN
set multiplot layout 1,2 title 'duet-bench scaling (OMP_WAIT_POLICY passive)'
set title 'graph (duet_graph_run)'
plot x with lines dashtype 2 lc 'black' title 'ideal', \
     'scaling.csv' using 4:(sel('stream triad', 'openmp', $9)) with linespoints dashtype 3 lc 'gray40' title 'STREAM triad', \
     '' using 4:(sel('chain8', 'graph', $9)) with linespoints lc '#1f77b4' title 'chain8', \
     '' using 4:(sel('sum', 'graph', $9)) with linespoints lc '#ff7f0e' title 'sum', \
     '' using 4:(sel('sum axis 1', 'graph', $9)) with linespoints lc '#2ca02c' title 'sum axis 1', \
     '' using 4:(sel('sum axis 0', 'graph', $9)) with linespoints lc '#d62728' title 'sum axis 0', \
     '' using 4:(sel('softmax', 'graph', $9)) with linespoints lc '#9467bd' title 'softmax', \
     '' using 4:(sel('layer_norm', 'graph', $9)) with linespoints lc '#8c564b' title 'layer_norm', \
     '' using 4:(sel('mlp b64', 'graph', $9)) with linespoints lc '#e377c2' title 'mlp b64', \
     '' using 4:(sel('cnn b64', 'graph', $9)) with linespoints lc '#17becf' title 'cnn b64', \
     '' using 4:(sel('train mlp b64', 'graph', $9)) with linespoints lc '#bcbd22' title 'train mlp b64', \
     '' using 4:(sel('train cnn b64', 'graph', $9)) with linespoints lc '#000080' title 'train cnn b64'
set title 'eager'
plot x with lines dashtype 2 lc 'black' title 'ideal', \
     'scaling.csv' using 4:(sel('stream triad', 'openmp', $9)) with linespoints dashtype 3 lc 'gray40' title 'STREAM triad', \
     '' using 4:(sel('chain8', 'eager', $9)) with linespoints lc '#1f77b4' title 'chain8', \
     '' using 4:(sel('sum', 'eager', $9)) with linespoints lc '#ff7f0e' title 'sum', \
     '' using 4:(sel('sum axis 1', 'eager', $9)) with linespoints lc '#2ca02c' title 'sum axis 1', \
     '' using 4:(sel('sum axis 0', 'eager', $9)) with linespoints lc '#d62728' title 'sum axis 0', \
     '' using 4:(sel('softmax', 'eager', $9)) with linespoints lc '#9467bd' title 'softmax', \
     '' using 4:(sel('layer_norm', 'eager', $9)) with linespoints lc '#8c564b' title 'layer_norm', \
     '' using 4:(sel('mlp b64', 'eager', $9)) with linespoints lc '#e377c2' title 'mlp b64', \
     '' using 4:(sel('cnn b64', 'eager', $9)) with linespoints lc '#17becf' title 'cnn b64', \
     '' using 4:(sel('train mlp b64', 'eager', $9)) with linespoints lc '#bcbd22' title 'train mlp b64', \
     '' using 4:(sel('train cnn b64', 'eager', $9)) with linespoints lc '#000080' title 'train cnn b64'
unset multiplot
