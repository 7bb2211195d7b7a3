"""EMG lab: quantitative needle EMG and nerve conduction studies (pure numpy/scipy cores)."""
