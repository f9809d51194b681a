# bench/frag.gp - docs/frag.png from the frag pattern's samples:
#   labyrinth-bench --patterns frag --frag-dat frag.dat
#   gnuplot -e "dat='frag.dat'; out='docs/frag.png'" bench/frag.gp
# (scripts/bench-docs.sh does both.)  Columns: see frag.c, lbb_frag_dat.
if (!exists("dat")) dat = 'frag.dat'
if (!exists("out")) out = 'frag.png'
set terminal pngcairo size 1000,900 font ",10"
set output out
set datafile missing '?'
set key outside right top
set lmargin at screen 0.08
set rmargin at screen 0.68
set grid
set linetype 1 lc rgb "#8e24aa"
set linetype 2 lc rgb "#2e7d32"
set linetype 3 lc rgb "#1e88e5"
set xlabel "operations (millions)"
set multiplot layout 3,1 title "frag: a random mixed-order workload held at up to 70% of a 65536-page pool"
set ylabel "largest free order"
set yrange [-0.5:10.5]
plot dat using ($1/1e6):5 with steps lt 1 lw 2 title "labyrinth KERNEL", \
     dat using ($1/1e6):11 with steps lt 2 lw 2 title "labyrinth ATOMIC", \
     dat using ($1/1e6):17 with steps lt 3 lw 2 dt 2 title "spinbuddy"
set ylabel "free pages (thousands)"
set key title "held back: magazines, depot, reserve" left
set yrange [0:*]
plot dat using ($1/1e6):($3/1e3) with lines lt 1 lw 2 title "labyrinth KERNEL: in the buddy", \
     dat using ($1/1e6):($4/1e3) with lines lt 1 lw 1.5 dt 3 title "labyrinth KERNEL: held back", \
     dat using ($1/1e6):($9/1e3) with lines lt 2 lw 2 title "labyrinth ATOMIC: in the buddy", \
     dat using ($1/1e6):($10/1e3) with lines lt 2 lw 1.5 dt 3 title "labyrinth ATOMIC: held back", \
     dat using ($1/1e6):($15/1e3) with lines lt 3 lw 2 dt 2 title "spinbuddy: in the buddy"
set key title ""
set ylabel "failed allocations, order > 0"
plot dat using ($1/1e6):7 with steps lt 1 lw 2 title "labyrinth KERNEL", \
     dat using ($1/1e6):13 with steps lt 2 lw 2 title "labyrinth ATOMIC", \
     dat using ($1/1e6):19 with steps lt 3 lw 2 dt 2 title "spinbuddy"
unset multiplot
