//! A small safe wrapper over the FDK AAC decoder for raw access units (FLV/RTMP carry AAC
//! without ADTS). fdk-aac's own `Decoder` keeps its handle private, and two settings are
//! needed that it cannot make: with its defaults the decoder holds back one frame for
//! concealment by energy interpolation and 15 ms more for its PCM limiter, ~36 ms of latency
//! (and CPU) a live bridge does not want.

use fdk_aac_sys as sys;

use crate::error::AudioError;

/// Room for the largest frame the decoder may return: 2048 samples (HE-AAC) × 8 channels,
/// whatever the downmix setting, as FDK checks the size against its worst case.
pub(crate) const MAX_FRAME_SAMPLES: usize = 2048 * 8;

/// Layout of one decoded frame in the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DecodedFrame {
    pub rate: u32,
    pub channels: usize,
    /// Samples per channel.
    pub samples: usize,
}

pub(crate) struct AacDecoder {
    handle: sys::HANDLE_AACDECODER,
}

// SAFETY: the handle is owned by this value alone and only used through `&mut self`.
unsafe impl Send for AacDecoder {}

impl AacDecoder {
    pub fn new(asc: &[u8]) -> Result<Self, AudioError> {
        // FDK accepts an empty config and fails later; reject it here.
        if asc.len() < 2 {
            return Err(AudioError::InvalidConfig("shorter than 2 bytes"));
        }
        let len = u32::try_from(asc.len()).map_err(|_| AudioError::InvalidConfig("too long"))?;
        // SAFETY: plain constructor; a null handle is checked below.
        let handle = unsafe { sys::aacDecoder_Open(sys::TRANSPORT_TYPE_TT_MP4_RAW, 1) };
        if handle.is_null() {
            return Err(AudioError::InvalidConfig("decoder could not be opened"));
        }
        let mut dec = AacDecoder { handle };
        let mut ptr = asc.as_ptr().cast_mut();
        // SAFETY: FDK only reads `len` bytes from `ptr` (the API is not const-correct).
        let err = unsafe { sys::aacDecoder_ConfigRaw(dec.handle, &mut ptr, &len) };
        if err != sys::AAC_DECODER_ERROR_AAC_DEC_OK {
            return Err(AudioError::InvalidConfig("rejected by the decoder"));
        }
        // Downmix anything wider than stereo: WebRTC Opus carries at most two channels.
        dec.set_param(sys::AACDEC_PARAM_AAC_PCM_MAX_OUTPUT_CHANNELS, 2)?;
        dec.set_param(sys::AACDEC_PARAM_AAC_PCM_LIMITER_ENABLE, 0)?;
        // Spectral muting: conceals without the one-frame delay of the default method.
        dec.set_param(sys::AACDEC_PARAM_AAC_CONCEAL_METHOD, 0)?;
        Ok(dec)
    }

    fn set_param(&mut self, param: sys::AACDEC_PARAM, value: i32) -> Result<(), AudioError> {
        // SAFETY: valid handle; FDK range-checks the value.
        let err = unsafe { sys::aacDecoder_SetParam(self.handle, param, value) };
        if err == sys::AAC_DECODER_ERROR_AAC_DEC_OK {
            Ok(())
        } else {
            Err(AudioError::InvalidConfig("decoder parameter rejected"))
        }
    }

    /// Decodes one raw access unit into `pcm` (interleaved), which must hold
    /// [`MAX_FRAME_SAMPLES`].
    pub fn decode(&mut self, au: &[u8], pcm: &mut [i16]) -> Result<DecodedFrame, AudioError> {
        if au.is_empty() {
            return Err(AudioError::EmptyFrame);
        }
        let size = u32::try_from(au.len()).map_err(|_| AudioError::AacDecode { code: 0 })?;
        let pcm_len = i32::try_from(pcm.len().min(MAX_FRAME_SAMPLES)).unwrap_or(i32::MAX);
        let mut ptr = au.as_ptr().cast_mut();
        let mut left = size;
        // SAFETY: FDK copies at most `size` bytes from `ptr` into its own buffer and writes at
        // most `pcm_len` samples into `pcm`.
        let err = unsafe {
            let err = sys::aacDecoder_Fill(self.handle, &mut ptr, &size, &mut left);
            if err != sys::AAC_DECODER_ERROR_AAC_DEC_OK || left != 0 {
                err.max(1)
            } else {
                sys::aacDecoder_DecodeFrame(self.handle, pcm.as_mut_ptr(), pcm_len, 0)
            }
        };
        if err != sys::AAC_DECODER_ERROR_AAC_DEC_OK {
            // Whatever of a bad unit is still buffered must not prefix the next one.
            // SAFETY: valid handle.
            unsafe {
                sys::aacDecoder_SetParam(self.handle, sys::AACDEC_PARAM_AAC_TPDEC_CLEAR_BUFFER, 1)
            };
            return Err(AudioError::AacDecode { code: err });
        }
        // SAFETY: valid handle; the info lives as long as the decoder and is copied out here.
        let info = unsafe { sys::aacDecoder_GetStreamInfo(self.handle).as_ref() }
            .ok_or(AudioError::AacDecode { code: 0 })?;
        let rate = u32::try_from(info.sampleRate).unwrap_or(0);
        let channels = usize::try_from(info.numChannels).unwrap_or(0);
        let samples = usize::try_from(info.frameSize).unwrap_or(0);
        if rate == 0 || !(1..=2).contains(&channels) || samples * channels > pcm.len() {
            return Err(AudioError::UnsupportedFormat { rate, channels });
        }
        Ok(DecodedFrame {
            rate,
            channels,
            samples,
        })
    }
}

impl Drop for AacDecoder {
    fn drop(&mut self) {
        // SAFETY: the handle came from aacDecoder_Open and is closed once.
        unsafe { sys::aacDecoder_Close(self.handle) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_configs() {
        assert!(AacDecoder::new(&[]).is_err());
        assert!(AacDecoder::new(&[0x12]).is_err());
        assert!(AacDecoder::new(&[0xff, 0xff]).is_err());
        assert!(AacDecoder::new(&[0x12, 0x10]).is_ok());
    }

    #[test]
    fn empty_and_garbage_units_are_errors() {
        let mut dec = AacDecoder::new(&[0x12, 0x10]).unwrap();
        let mut pcm = vec![0; MAX_FRAME_SAMPLES];
        assert!(matches!(
            dec.decode(&[], &mut pcm),
            Err(AudioError::EmptyFrame)
        ));
        assert!(dec.decode(&[0xff; 300], &mut pcm).is_err());
    }
}
