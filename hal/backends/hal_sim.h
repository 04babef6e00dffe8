/* hal_sim — options of the `sim` backend: a kinematic arm in its own thread
 * (hal_sim.c, docs/hal.md). Pass a hal_sim_options_t as
 * hal_options_t.backend_options with backend = "sim". */
#ifndef PACD_HAL_SIM_H
#define PACD_HAL_SIM_H

/* Zero fields take the defaults; backend_options == NULL means all
 * defaults. Read by hal_new only (not kept). */
typedef struct {
    double rate_hz; /* integration rate, Hz, 10..10000; 0 = 1000 */
} hal_sim_options_t;

#endif
