"""The click commands of `imatrix`: parse options, call the library, print."""
