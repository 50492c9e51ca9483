//go:build !amd64

package vecmath

const useAVX2, useAVX512 = false, false

func expAVX2(dst, src []float32)                           { panic("unreachable") }
func sumExpAVX2(x []float32, m float32) float64            { panic("unreachable") }
func maxAVX2(x []float32) (float32, bool)                  { panic("unreachable") }
func expAVX512(dst, src []float32)                         { panic("unreachable") }
func expSumAVX512(dst, src []float32, m float32) float64   { panic("unreachable") }
func sumExpAVX512(x []float32, m float32) float64          { panic("unreachable") }
func maxAVX512(x []float32) (float32, bool)                { panic("unreachable") }
func scaleAVX512(x []float32, c float32)                   { panic("unreachable") }
func scaleAddAVX512(x []float32, c float32, acc []float32) { panic("unreachable") }
